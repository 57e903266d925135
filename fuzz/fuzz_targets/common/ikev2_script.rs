//! What the IKEv2 targets that fuzz with a script of protected messages share
//! (`ikev2_responder`, `ikev2_intermediate`): the two ferrosec endpoints, initiator A and
//! responder B (PSK, A's addresses 10.1.0.0/24, B's 10.2.0.0/24), reading the input, sealing
//! a message with A's keys as the engine seals it, opening A's own requests into templates,
//! and the script itself, run by [`run`] against a target's [`Script`].
//!
//! The script, read byte by byte after the target's own first byte (missing bytes read as
//! zero): up to [`MAX_MESSAGES`] messages, each:
//! - `ctl`: bits 0-1 the exchange ([`Script::EXCHANGES`], or 3: the next byte), bits 2-3
//!   the Message ID (next expected, previous, next + 1, next 4 bytes), bit 4 the R flag,
//!   bit 5 fragmented, bit 6 advance the clock afterwards (next byte, seconds), bit 7 the
//!   target's own ([`Script::initiator_flag`], [`Script::keys_for`]);
//! - the first inner payload type, a 2-byte length and that many inner payload bytes; or,
//!   with the length's top bit set, one of A's own requests ([`Script::template`], chosen by
//!   the payload type byte) with `length & 7` edits of 3 bytes each (2-byte offset, xor);
//! - when fragmented (RFC 7383): the number of pieces (1-8), a total mode (the real count,
//!   one more, one less, or the next 2 bytes), a count of fragments to send (0: all, in
//!   order) and one byte per fragment: its number (0 and pieces + 1 invalid), bit 6 a wrong
//!   Next Payload, bit 7 the total plus one.
//!
//! After the messages the clock moves on by 1 s, 10 s, 1 min, 10 min, 1 h and 1 day.
//! Nothing may panic; B sends at most [`MAX_TRANSMITS`] datagrams at once and the target's
//! [`Script::check`] holds after every message and every step of the clock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ferrosec_crypto::{IkeSkCrypter, Provider, Secret};
use ferrosec_ike::Transmit;
use ferrosec_ike::export::IkeKeyExport;
use ferrosec_ike::proposal::Proposal;
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use ferrosec_ike::v2::{ChildPolicy, Endpoint, EndpointConfig, Identity, NATT_PORT, PeerConfig};
use ferrosec_wire::ikev2::{
    Encrypted, EncryptedFragment, ExchangeType, Flags, Header, Message, Packet, Payload,
    PayloadBody, PayloadType, Version,
};
use ferrosec_wire::{IkeSpi, MessageId};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

/// Messages per input.
pub const MAX_MESSAGES: usize = 8;
/// Datagrams B may send for one input datagram or timeout (a response may be fragmented
/// into at most 32 pieces; retransmissions come on top).
pub const MAX_TRANSMITS: usize = 64;

/// One base instant for every run: the engine only sees differences from it.
pub static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

pub const A_ADDR: &str = "192.0.2.1:500";
pub const B_ADDR: &str = "192.0.2.2:500";

fn net(s: &str) -> AddrSpec {
    let (a, l) = s.split_once('/').unwrap();
    AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
}

fn cfg(
    peer: &str,
    ids: (&str, &str),
    nets: (&str, &str),
    ike: &Proposal,
    esp: &[Proposal],
) -> PeerConfig {
    let peer: SocketAddr = peer.parse().unwrap();
    PeerConfig {
        name: "p".into(),
        peer_addr: Some(peer.ip()),
        local_id: Some(Identity::fqdn(ids.0)),
        peer_id: Some(Identity::fqdn(ids.1)),
        psk: Secret::from_slice(b"correct horse battery staple"),
        ike_proposals: vec![ike.clone()],
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
            esp.to_vec(),
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

/// A and B, each with the other as its one peer, both offering `ike` for the IKE SA and
/// `esp` for the Child SA; their generators are seeded with 1 and 2.
pub fn pair(ike: Proposal, esp: Vec<Proposal>) -> (Endpoint, Endpoint) {
    let a = cfg(
        B_ADDR,
        ("a.example", "b.example"),
        ("10.1.0.0/24", "10.2.0.0/24"),
        &ike,
        &esp,
    );
    let b = cfg(
        A_ADDR,
        ("b.example", "a.example"),
        ("10.2.0.0/24", "10.1.0.0/24"),
        &ike,
        &esp,
    );
    (endpoint(a, 1), endpoint(b, 2))
}

/// The fuzz input, read a byte at a time; zeros once it runs out.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn u8(&mut self) -> u8 {
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

/// A's (the initiator's) SPIs and outbound keys of the one IKEv2 SA in `keys` (what
/// `Endpoint::export_ike_keys` or `export_handshake_keys` gave).
pub fn a_keys(mut keys: Vec<IkeKeyExport>) -> (IkeSpi, IkeSpi, IkeSkCrypter) {
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
pub fn ike_part(local: SocketAddr, data: &[u8]) -> &[u8] {
    if local.port() == NATT_PORT {
        data.get(4..).unwrap_or(&[])
    } else {
        data
    }
}

/// A request A itself sent, decrypted: its first inner payload and the inner payloads (the
/// fragments' plaintexts joined in order when it went as IKE fragments).
pub struct Template {
    pub first: PayloadType,
    pub plain: Vec<u8>,
}

/// Opens the datagrams (`(local address, data)`) of one request A sent with A's `keys`.
pub fn open_request(datagrams: &[(SocketAddr, Vec<u8>)], keys: &IkeSkCrypter) -> Template {
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

/// B, the endpoint under test, as A's messages reach it.
pub struct ToB {
    pub b: Endpoint,
    pub now: Instant,
    /// B's address and A's, as A last sent (port 4500 after NAT detection).
    pub b_addr: SocketAddr,
    pub a_addr: SocketAddr,
    /// The next request Message ID B expects from A.
    pub next_id: u32,
}

/// What a target plugs into [`run`].
pub trait Script {
    /// The exchange types of `ctl & 3` = 0, 1 and 2.
    const EXCHANGES: [ExchangeType; 3];

    fn to_b(&mut self) -> &mut ToB;
    /// The IKE SA's SPIs (initiator's, responder's).
    fn spis(&self) -> (IkeSpi, IkeSpi);
    /// Whether the message of `ctl` has the I flag.
    fn initiator_flag(ctl: u8) -> bool;
    /// Which of A's keys the message of `ctl` is sealed with (one choice for the whole
    /// message, even when its fragments make A's keys change on the way).
    fn keys_for(&self, ctl: u8) -> usize;
    fn keys(&self, index: usize) -> &IkeSkCrypter;
    /// The template the payload type byte `pick` chooses.
    fn template(&self, pick: u8) -> &Template;
    /// Sees each datagram of B's that has an IKE header, after the Message ID bookkeeping.
    fn on_b_sent(&mut self, _header: &Header, _sent: &Transmit) {}
    /// What must hold after `sent` messages.
    fn check(&mut self, sent: usize);

    /// Gives B one datagram from A, then drains B: every response to one of our requests
    /// moves the expected Message ID on.
    fn deliver(&mut self, msg: &[u8]) {
        let to_b = self.to_b();
        let data = if to_b.b_addr.port() == NATT_PORT {
            let mut d = vec![0u8; 4];
            d.extend_from_slice(msg);
            d
        } else {
            msg.to_vec()
        };
        to_b.b
            .handle_datagram(to_b.now, to_b.b_addr, to_b.a_addr, &data);
        self.drain();
    }

    fn drain(&mut self) {
        let mut n = 0;
        while let Some(t) = self.to_b().b.poll_transmit() {
            n += 1;
            assert!(
                n <= MAX_TRANSMITS,
                "B sends more than {MAX_TRANSMITS} datagrams at once"
            );
            if let Ok(p) = Packet::new_checked(ike_part(t.local, &t.data)) {
                let h = Header::parse(&p);
                let to_b = self.to_b();
                if h.flags.response() && h.message_id.0 == to_b.next_id {
                    to_b.next_id = to_b.next_id.wrapping_add(1);
                }
                self.on_b_sent(&h, &t);
            }
        }
        while self.to_b().b.poll_event().is_some() {}
    }

    fn advance(&mut self, secs: u64) {
        let to_b = self.to_b();
        to_b.now += Duration::from_secs(secs);
        to_b.b.handle_timeout(to_b.now);
        self.drain();
    }
}

/// Runs the script of `input` (see the module's header) against `s`.
pub fn run<S: Script>(mut input: Input, s: &mut S) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut sent = 0usize;
    while !input.0.is_empty() && sent < MAX_MESSAGES {
        sent += 1;
        let ctl = input.u8();
        let exchange = match ctl & 3 {
            3 => ExchangeType(input.u8()),
            e => S::EXCHANGES[usize::from(e)],
        };
        let next_id = s.to_b().next_id;
        let message_id = match (ctl >> 2) & 3 {
            0 => next_id,
            1 => next_id.wrapping_sub(1),
            2 => next_id.wrapping_add(1),
            _ => input.u32(),
        };
        let mut flags = 0;
        if S::initiator_flag(ctl) {
            flags |= Flags::INITIATOR;
        }
        if ctl & 0x10 != 0 {
            flags |= Flags::RESPONSE;
        }
        let ki = s.keys_for(ctl);
        let (initiator_spi, responder_spi) = s.spis();
        let header = Header {
            initiator_spi,
            responder_spi,
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
            let t = s.template(first.0);
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
            let msg = seal(s.keys(ki), &mut rng, header, first, None, &plain);
            s.deliver(&msg);
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
                let msg = seal(
                    s.keys(ki),
                    &mut rng,
                    header,
                    next,
                    Some((number, total)),
                    piece,
                );
                s.deliver(&msg);
            }
        }
        if ctl & 0x40 != 0 {
            let secs = u64::from(input.u8());
            s.advance(secs);
        }
        s.check(sent);
    }
    // Retransmissions, rekeys, half-open timeouts, liveness and expiry run their course.
    for secs in [1, 10, 60, 600, 3600, 86_400] {
        s.advance(secs);
        s.check(sent);
    }
}
