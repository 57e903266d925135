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
//! - then up to [`MAX_MESSAGES`] messages, each:
//!   - `ctl`: bits 0-1 exchange (IKE_INTERMEDIATE, IKE_AUTH, INFORMATIONAL, next byte),
//!     bits 2-3 Message ID (next expected, previous, next + 1, next 4 bytes), bit 4 the R
//!     flag, bit 5 fragmented, bit 6 advance the clock afterwards (next byte, seconds),
//!     bit 7 sealed with the keys after the ML-KEM exchange (else those of IKE_SA_INIT);
//!   - the first inner payload type, a 2-byte length and that many inner payload bytes; or,
//!     with the length's top bit set, one of A's own requests (chosen by the payload type
//!     byte: even IKE_INTERMEDIATE, odd IKE_AUTH) with `length & 7` edits of 3 bytes each
//!     (offset, xor);
//!   - when fragmented: the number of pieces (1-8), a total mode (the real count, one more,
//!     one less, or the next 2 bytes), a count of fragments to send (0: all, in order) and
//!     one byte per fragment: its number (0 and pieces + 1 invalid), bit 6 a wrong Next
//!     Payload, bit 7 the total plus one.
#![no_main]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ferrosec_crypto::{IkeSkCrypter, Provider, Secret};
use ferrosec_ike::export::IkeKeyExport;
use ferrosec_ike::proposal::Transform;
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use ferrosec_ike::v2::{
    self, ChildPolicy, Endpoint, EndpointConfig, Identity, NATT_PORT, PeerConfig,
};
use ferrosec_wire::ikev2::{
    DhGroup, Encrypted, EncryptedFragment, ExchangeType, Flags, Header, Message, Packet, Payload,
    PayloadBody, PayloadType, Version,
};
use ferrosec_wire::{IkeSpi, MessageId};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

/// Messages per input.
const MAX_MESSAGES: usize = 8;
/// Datagrams B may send for one input datagram or timeout (a response may be fragmented
/// into at most 32 pieces; retransmissions come on top).
const MAX_TRANSMITS: usize = 64;

/// One base instant for every run: the engine only sees differences from it.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn net(s: &str) -> AddrSpec {
    let (a, l) = s.split_once('/').unwrap();
    AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
}

fn cfg(peer: SocketAddr, ids: (&str, &str), nets: (&str, &str), kem: DhGroup) -> PeerConfig {
    let mut ike = v2::ike_proposal_gcm(DhGroup::CURVE25519);
    ike.transforms.push(Transform::addke(1, kem));
    PeerConfig {
        name: "p".into(),
        peer_addr: Some(peer.ip()),
        local_id: Some(Identity::fqdn(ids.0)),
        peer_id: Some(Identity::fqdn(ids.1)),
        psk: Secret::from_slice(b"correct horse battery staple"),
        ike_proposals: vec![ike],
        policies: vec![ChildPolicy::new(
            ProxyId {
                name: "lan".into(),
                local: net(nets.0),
                remote: net(nets.1),
                protocol: 0,
                local_ports: PortRange::ANY,
                remote_ports: PortRange::ANY,
            }
            .to_policy(),
            vec![v2::esp_proposal_gcm()],
        )],
        liveness: None,
        nat_traversal: true,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    }
}

const A_ADDR: &str = "192.0.2.1:500";
const B_ADDR: &str = "192.0.2.2:500";

fn endpoint_a(kem: DhGroup) -> Endpoint {
    let b: SocketAddr = B_ADDR.parse().unwrap();
    let c = cfg(
        b,
        ("a.example", "b.example"),
        ("10.1.0.0/24", "10.2.0.0/24"),
        kem,
    );
    endpoint(c, 1)
}

fn endpoint_b(kem: DhGroup) -> Endpoint {
    let a: SocketAddr = A_ADDR.parse().unwrap();
    let c = cfg(
        a,
        ("b.example", "a.example"),
        ("10.2.0.0/24", "10.1.0.0/24"),
        kem,
    );
    endpoint(c, 2)
}

fn endpoint(peer: PeerConfig, seed: u64) -> Endpoint {
    Endpoint::new(
        EndpointConfig::default(),
        vec![peer],
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
        *EPOCH,
    )
}

/// The fuzz input, read a byte at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// One message from A to B: an SK payload, or one SKF payload when `fragment` is
/// `(number, total)`, around `plain`, sealed as the engine seals (protect.rs `seal_one`).
fn seal(
    send: &IkeSkCrypter,
    rng: &mut ChaCha8Rng,
    header: Header,
    next: PayloadType,
    fragment: Option<(u16, u16)>,
    plain: &[u8],
) -> Vec<u8> {
    let placeholder = vec![0u8; send.encrypted_len(plain.len())];
    let body = match fragment {
        None => PayloadBody::Encrypted(Encrypted {
            next_payload: next,
            data: &placeholder,
        }),
        Some((fragment_number, total_fragments)) => {
            PayloadBody::EncryptedFragment(EncryptedFragment {
                next_payload: next,
                fragment_number,
                total_fragments,
                data: &placeholder,
            })
        }
    };
    let msg = Message {
        header,
        payloads: vec![Payload::new(body)],
    };
    let mut out = msg.to_vec().expect("message fits");
    let layout = msg.sk_layout().expect("has an SK payload");
    let aad = out[layout.aad()].to_vec();
    let sealed = send.seal(rng, &aad, plain).expect("sealing works");
    out[layout.data].copy_from_slice(&sealed);
    out
}

/// A's (initiator's) outbound keys of the one IKE SA it has, established or not.
fn a_keys(a: &Endpoint) -> (IkeSpi, IkeSpi, IkeSkCrypter) {
    let mut keys = a.export_handshake_keys();
    let Some(IkeKeyExport::V2 {
        spi_i,
        spi_r,
        encr,
        integ,
        sk_ei,
        sk_ai,
        ..
    }) = keys.pop()
    else {
        panic!("A has one IKEv2 SA with keys");
    };
    let send = IkeSkCrypter::new(encr, &sk_ei, integ, &sk_ai).expect("A's keys");
    (spi_i, spi_r, send)
}

/// The IKE message of a datagram (after the non-ESP marker on 4500).
fn ike_part(local: SocketAddr, data: &[u8]) -> &[u8] {
    if local.port() == NATT_PORT {
        data.get(4..).unwrap_or(&[])
    } else {
        data
    }
}

/// A request A itself sent, decrypted: its first inner payload and the inner payloads (the
/// fragments' plaintexts joined in order when it went as IKE fragments).
struct Template {
    first: PayloadType,
    plain: Vec<u8>,
}

fn open_request(datagrams: &[(SocketAddr, Vec<u8>)], keys: &IkeSkCrypter) -> Template {
    let mut pieces = BTreeMap::new();
    let mut first = PayloadType::NONE;
    for (local, d) in datagrams {
        let raw = ike_part(*local, d);
        let msg = Message::parse(raw).expect("A's request parses");
        let layout = msg.sk_layout().expect("A's request is protected");
        let plain = keys
            .open(&raw[layout.aad()], &raw[layout.data.clone()])
            .expect("A's request opens with A's keys");
        let number = msg
            .payloads
            .iter()
            .find_map(|p| match &p.body {
                PayloadBody::EncryptedFragment(f) => Some(f.fragment_number),
                _ => None,
            })
            .unwrap_or(1);
        if number == 1 {
            first = layout.next_payload;
        }
        pieces.insert(number, plain);
    }
    Template {
        first,
        plain: pieces.into_values().flatten().collect(),
    }
}

/// A and B after IKE_SA_INIT, with A's IKE_INTERMEDIATE request (not delivered) as the first
/// template. ML-KEM draws its randomness from aws-lc's own generator (crypto's kex/mlkem.rs),
/// so A's encapsulation key and B's ciphertext differ from run to run: A runs beside B in
/// every run, and its keys after the ML-KEM exchange and its IKE_AUTH request come from B's
/// first answer to an IKE_INTERMEDIATE request.
struct Harness {
    a: Endpoint,
    b: Endpoint,
    now: Instant,
    /// B's address and A's as A sent its IKE_INTERMEDIATE request (4500 after NAT detection).
    b_addr: SocketAddr,
    a_addr: SocketAddr,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    /// A's outbound keys after IKE_SA_INIT, and after the ML-KEM exchange once A has them.
    keys: Vec<IkeSkCrypter>,
    /// A's IKE_INTERMEDIATE request, and its IKE_AUTH request once A has sent it.
    templates: Vec<Template>,
    /// The next request Message ID B expects from A.
    next_id: u32,
}

impl Harness {
    fn new(kem: DhGroup) -> Self {
        let now = *EPOCH;
        let mut a = endpoint_a(kem);
        let mut b = endpoint_b(kem);
        let peer = a.peers().next().unwrap().0;
        a.initiate(now, peer, A_ADDR.parse().unwrap(), B_ADDR.parse().unwrap())
            .expect("initiate");
        let t = a.poll_transmit().expect("IKE_SA_INIT request");
        b.handle_datagram(now, t.remote, t.local, &t.data);
        let t = b.poll_transmit().expect("IKE_SA_INIT response");
        a.handle_datagram(now, t.remote, t.local, &t.data);
        assert_eq!(b.ike_sa_count(), 1, "B answered the IKE_SA_INIT request");
        let mut sent = Vec::new();
        let (mut b_addr, mut a_addr) = (t.local, t.remote);
        while let Some(t) = a.poll_transmit() {
            (b_addr, a_addr) = (t.remote, t.local);
            sent.push((t.local, t.data.to_vec()));
        }
        let (spi_i, spi_r, keys) = a_keys(&a);
        let template = open_request(&sent, &keys);
        assert_eq!(
            template.first,
            PayloadType::KE,
            "IKE_INTERMEDIATE carries the KE"
        );
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        Harness {
            a,
            b,
            now,
            b_addr,
            a_addr,
            spi_i,
            spi_r,
            keys: vec![keys],
            templates: vec![template],
            // IKE_SA_INIT was 0.
            next_id: 1,
        }
    }

    /// Gives B one datagram from A, then drains B: every response to one of our requests
    /// moves the expected Message ID on.
    fn deliver(&mut self, msg: &[u8]) {
        let data = if self.b_addr.port() == NATT_PORT {
            let mut d = vec![0u8; 4];
            d.extend_from_slice(msg);
            d
        } else {
            msg.to_vec()
        };
        self.b
            .handle_datagram(self.now, self.b_addr, self.a_addr, &data);
        self.drain();
    }

    fn drain(&mut self) {
        let mut n = 0;
        while let Some(t) = self.b.poll_transmit() {
            n += 1;
            assert!(
                n <= MAX_TRANSMITS,
                "B sends more than {MAX_TRANSMITS} datagrams at once"
            );
            if let Ok(p) = Packet::new_checked(ike_part(t.local, &t.data)) {
                let h = Header::parse(&p);
                if h.flags.response() && h.message_id.0 == self.next_id {
                    self.next_id = self.next_id.wrapping_add(1);
                }
                // B's answer to an IKE_INTERMEDIATE request: A completes the ML-KEM
                // exchange with it (once), and its keys and IKE_AUTH request become ours.
                if h.flags.response()
                    && h.exchange_type == ExchangeType::IKE_INTERMEDIATE
                    && self.keys.len() == 1
                {
                    self.a.handle_datagram(self.now, t.remote, t.local, &t.data);
                    self.take_a_auth();
                }
            }
        }
        while self.b.poll_event().is_some() {}
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
        let Ok(p) = Packet::new_checked(ike_part(*local, first)) else {
            return;
        };
        if Header::parse(&p).exchange_type != ExchangeType::IKE_AUTH {
            return;
        }
        let (_, _, keys) = a_keys(&self.a);
        let template = open_request(&sent, &keys);
        self.keys.push(keys);
        self.templates.push(template);
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.b.handle_timeout(self.now);
        self.drain();
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
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut sent = 0usize;
    while !input.0.is_empty() && sent < MAX_MESSAGES {
        sent += 1;
        let ctl = input.u8();
        let exchange = match ctl & 3 {
            0 => ExchangeType::IKE_INTERMEDIATE,
            1 => ExchangeType::IKE_AUTH,
            2 => ExchangeType::INFORMATIONAL,
            _ => ExchangeType(input.u8()),
        };
        let message_id = match (ctl >> 2) & 3 {
            0 => h.next_id,
            1 => h.next_id.wrapping_sub(1),
            2 => h.next_id.wrapping_add(1),
            _ => input.u32(),
        };
        let mut flags = Flags::INITIATOR;
        if ctl & 0x10 != 0 {
            flags |= Flags::RESPONSE;
        }
        // The keys after the ML-KEM exchange when A has them, else those of IKE_SA_INIT.
        let ki = usize::from(ctl >> 7).min(h.keys.len() - 1);
        let header = Header {
            initiator_spi: h.spi_i,
            responder_spi: h.spi_r,
            version: Version::IKEV2,
            exchange_type: exchange,
            flags: Flags(flags),
            message_id: MessageId(message_id),
        };
        let mut first = PayloadType(input.u8());
        let len = input.u16();
        let plain = if len & 0x8000 == 0 {
            input.bytes(usize::from(len)).to_vec()
        } else {
            // One of A's own requests with up to 7 (offset, xor) edits.
            let t = &h.templates[usize::from(first.0 & 1).min(h.templates.len() - 1)];
            first = t.first;
            let mut plain = t.plain.clone();
            for _ in 0..len & 7 {
                let at = usize::from(input.u16()) % plain.len().max(1);
                let x = input.u8();
                if let Some(b) = plain.get_mut(at) {
                    *b ^= x;
                }
            }
            plain
        };
        if ctl & 0x20 == 0 {
            h.deliver(&seal(&h.keys[ki], &mut rng, header, first, None, &plain));
        } else {
            let pieces = usize::from(input.u8() % 8) + 1;
            let chunk = plain.len().div_ceil(pieces).max(1);
            let chunks: Vec<&[u8]> = (0..pieces)
                .map(|i| {
                    plain
                        .get(i * chunk..)
                        .map_or(&[][..], |c| &c[..c.len().min(chunk)])
                })
                .collect();
            let real = pieces as u16;
            let total = match input.u8() & 3 {
                0 => real,
                1 => real + 1,
                2 => real - 1,
                _ => input.u16(),
            };
            let order: Vec<u8> = match input.u8() % 16 {
                0 => (1..=pieces as u8).collect(),
                n => (0..n).map(|_| input.u8()).collect(),
            };
            for e in order {
                let number = u16::from(e & 0x3f) % (real + 2);
                let piece = chunks
                    .get(usize::from(number).wrapping_sub(1))
                    .copied()
                    .unwrap_or(chunks[0]);
                let next = if (number == 1) != (e & 0x40 != 0) {
                    first
                } else {
                    PayloadType::NONE
                };
                let total = if e & 0x80 != 0 {
                    total.wrapping_add(1)
                } else {
                    total
                };
                h.deliver(&seal(
                    &h.keys[ki],
                    &mut rng,
                    header,
                    next,
                    Some((number, total)),
                    piece,
                ));
            }
        }
        if ctl & 0x40 != 0 {
            let secs = u64::from(input.u8());
            h.advance(secs);
        }
        // Nothing here makes B hold a second IKE SA (no IKE_SA_INIT, no rekey of an SA
        // that is not up yet).
        assert!(h.b.ike_sa_count() <= 1, "IKE SAs: {}", h.b.ike_sa_count());
    }
    // Retransmissions, the half-open timeout, liveness and expiry run their course.
    for secs in [1, 10, 60, 600, 3600, 86_400] {
        h.advance(secs);
        assert!(h.b.ike_sa_count() <= 1, "IKE SAs: {}", h.b.ike_sa_count());
    }
});
