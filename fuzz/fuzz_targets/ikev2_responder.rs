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
//! - then up to [`MAX_MESSAGES`] messages, each:
//!   - `ctl`: bits 0-1 exchange (INFORMATIONAL, CREATE_CHILD_SA, IKE_AUTH, next byte),
//!     bits 2-3 Message ID (next expected, previous, next + 1, next 4 bytes), bit 4 the R
//!     flag, bit 5 fragmented, bit 6 advance the clock afterwards (next byte, seconds),
//!     bit 7 clear the I flag;
//!   - the first inner payload type, a 2-byte length and that many inner payload bytes; or,
//!     with the length's top bit set, one of A's own requests (`TEMPLATES`, chosen by the
//!     payload type byte: rekey the Child SA, rekey the IKE SA, a new Child SA, delete the
//!     Child SA) with `length & 7` edits of 3 bytes each (offset, xor);
//!   - when fragmented: the number of pieces (1-8), a total mode (the real count, one more,
//!     one less, or the next 2 bytes), a count of fragments to send (0: all, in order) and
//!     one byte per fragment: its number (0 and pieces + 1 invalid), bit 6 a wrong Next
//!     Payload, bit 7 the total plus one.
#![no_main]

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ferrosec_crypto::{IkeSkCrypter, Provider, Secret};
use ferrosec_ike::export::IkeKeyExport;
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

fn cfg(peer: SocketAddr, ids: (&str, &str), nets: (&str, &str), gcm: bool) -> PeerConfig {
    PeerConfig {
        name: "p".into(),
        peer_addr: Some(peer.ip()),
        local_id: Some(Identity::fqdn(ids.0)),
        peer_id: Some(Identity::fqdn(ids.1)),
        psk: Secret::from_slice(b"correct horse battery staple"),
        ike_proposals: vec![if gcm {
            v2::ike_proposal_gcm(DhGroup::CURVE25519)
        } else {
            v2::ike_proposal_cbc(256, DhGroup::CURVE25519)
        }],
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
            vec![v2::esp_proposal_gcm(), v2::esp_proposal_cbc(128)],
        )],
        liveness: None,
        nat_traversal: true,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    }
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

struct Harness {
    b: Endpoint,
    now: Instant,
    /// B's address and A's, as A last sent (port 4500 after NAT detection).
    b_addr: SocketAddr,
    a_addr: SocketAddr,
    /// The next request Message ID B expects from A.
    next_id: u32,
}

impl Harness {
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
            let ike = if t.local.port() == NATT_PORT {
                t.data.get(4..).unwrap_or(&[])
            } else {
                &t.data[..]
            };
            if let Ok(p) = Packet::new_checked(ike) {
                let h = Header::parse(&p);
                if h.flags.response() && h.message_id.0 == self.next_id {
                    self.next_id = self.next_id.wrapping_add(1);
                }
            }
        }
        while self.b.poll_event().is_some() {}
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.b.handle_timeout(self.now);
        self.drain();
    }
}

/// A and B with an IKE SA (and its Child SA) up between them, B's address and A's as A
/// sent last (port 4500 after NAT detection), and A's outbound crypter with the SPIs.
struct Up {
    a: Endpoint,
    b: Endpoint,
    b_addr: SocketAddr,
    a_addr: SocketAddr,
    send: IkeSkCrypter,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
}

fn handshake(gcm: bool, cp: bool) -> Up {
    let a_addr: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let b_addr: SocketAddr = "192.0.2.2:500".parse().unwrap();
    let mut a = endpoint(
        cfg(
            b_addr,
            ("a.example", "b.example"),
            ("10.1.0.0/24", "10.2.0.0/24"),
            gcm,
        ),
        1,
    );
    let mut b = endpoint(
        cfg(
            a_addr,
            ("b.example", "a.example"),
            ("10.2.0.0/24", "10.1.0.0/24"),
            gcm,
        ),
        2,
    );
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
    let mut keys = a.export_ike_keys();
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
        panic!("A exports one IKEv2 SA");
    };
    let send = IkeSkCrypter::new(encr, &sk_ei, integ, &sk_ai).expect("A's keys");
    Up {
        a,
        b,
        b_addr: to_b,
        a_addr: from_a,
        send,
        spi_i,
        spi_r,
    }
}

/// The inner payloads of a request A itself makes on the IKE SA.
struct Template {
    first: PayloadType,
    plain: Vec<u8>,
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
            let raw = if t.local.port() == NATT_PORT {
                &t.data[4..]
            } else {
                &t.data[..]
            };
            let msg = Message::parse(raw).expect("A's request parses");
            let layout = msg.sk_layout().expect("A's request is protected");
            let plain = up
                .send
                .open(&raw[layout.aad()], &raw[layout.data.clone()])
                .expect("A's request opens");
            Template {
                first: layout.next_payload,
                plain,
            }
        })
        .collect()
}

static TEMPLATES: LazyLock<[Vec<Template>; 2]> =
    LazyLock::new(|| [templates(true), templates(false)]);

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let first = input.u8();
    let gcm = first & 1 == 0;
    let cp = first & 2 != 0;
    let templates = &TEMPLATES[usize::from(!gcm)];
    let Up {
        b,
        b_addr,
        a_addr,
        send,
        spi_i,
        spi_r,
        ..
    } = handshake(gcm, cp);
    let mut h = Harness {
        b,
        now: *EPOCH,
        b_addr,
        a_addr,
        // IKE_SA_INIT was 0, IKE_AUTH 1.
        next_id: 2,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut sent = 0usize;
    while !input.0.is_empty() && sent < MAX_MESSAGES {
        sent += 1;
        let ctl = input.u8();
        let exchange = match ctl & 3 {
            0 => ExchangeType::INFORMATIONAL,
            1 => ExchangeType::CREATE_CHILD_SA,
            2 => ExchangeType::IKE_AUTH,
            _ => ExchangeType(input.u8()),
        };
        let message_id = match (ctl >> 2) & 3 {
            0 => h.next_id,
            1 => h.next_id.wrapping_sub(1),
            2 => h.next_id.wrapping_add(1),
            _ => input.u32(),
        };
        let mut flags = 0;
        if ctl & 0x80 == 0 {
            flags |= Flags::INITIATOR;
        }
        if ctl & 0x10 != 0 {
            flags |= Flags::RESPONSE;
        }
        let header = Header {
            initiator_spi: spi_i,
            responder_spi: spi_r,
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
            let t = &templates[usize::from(first.0) % templates.len()];
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
            h.deliver(&seal(&send, &mut rng, header, first, None, &plain));
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
                    &send,
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
        // B holds A's IKE SA and at most one new one per message (an IKE SA rekey).
        assert!(
            h.b.ike_sa_count() <= 1 + sent,
            "IKE SAs: {}",
            h.b.ike_sa_count()
        );
    }
    // Retransmissions, rekeys, liveness and expiry run their course.
    for secs in [1, 10, 60, 600, 3600, 86_400] {
        h.advance(secs);
        assert!(
            h.b.ike_sa_count() <= 1 + sent,
            "IKE SAs: {}",
            h.b.ike_sa_count()
        );
    }
});
