//! IKE_SA_INIT floods against a responder (issue 20, part 1): attackers with real addresses
//! that return every cookie, while a legitimate initiator from another address brings its
//! IKE SA up. Virtual clock; the attackers are hand-made requests, the legitimate peer a
//! real [`Endpoint`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrosec_crypto::{Provider, Rng, Secret};
use ferrosec_wire::ikev2::{
    DhGroup, ExchangeType, Flags, Header, KeyExchange, Message, Notify, NotifyType, Payload,
    PayloadBody, Version,
};
use ferrosec_wire::{IkeSpi, MessageId};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::*;
use crate::halfopen::HalfOpenLimits;
use crate::sim::epoch;
use crate::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use crate::v2::cookie::CookieConfig;

const RESPONDER: &str = "198.51.100.1:500";
const LEGIT: &str = "198.51.100.2:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn policy(local: &str, remote: &str) -> crate::ts::TsPolicy {
    let net = |s: &str| {
        let (a, l) = s.split_once('/').unwrap();
        AddrSpec::Range(AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap())
    };
    ProxyId {
        name: "lan".into(),
        local: net(local),
        remote: net(remote),
        protocol: 0,
        local_ports: PortRange::ANY,
        remote_ports: PortRange::ANY,
    }
    .to_policy()
}

fn peer(name: &str, peer_addr: Option<IpAddr>, local_id: &str, peer_id: &str) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        peer_addr,
        local_id: Some(Identity::fqdn(local_id)),
        peer_id: Some(Identity::fqdn(peer_id)),
        psk: Secret::from_slice(b"flood test key"),
        ike_proposals: vec![ike_proposal_gcm(DhGroup::ECP_256)],
        policies: vec![ChildPolicy::new(
            if local_id == "hq.example" {
                policy("10.1.0.0/24", "10.2.0.0/24")
            } else {
                policy("10.2.0.0/24", "10.1.0.0/24")
            },
            vec![esp_proposal_gcm()],
        )],
        liveness: None,
        nat_traversal: true,
        restart_on_dead_peer: false,
        strict_cookies: false,
        fragmentation: true,
    }
}

/// A dynamic responder as in the issue: cookies from 50 half-open SAs, at most 1,000.
fn responder(max_half_open: usize, limits: HalfOpenLimits) -> Endpoint {
    Endpoint::new(
        EndpointConfig {
            cookies: CookieConfig {
                activation_threshold: 50,
                max_half_open,
                ..Default::default()
            },
            half_open: limits,
            ..Default::default()
        },
        vec![peer("branches", None, "hq.example", "branch.example")],
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(1)),
        epoch(),
    )
}

fn legit() -> Endpoint {
    Endpoint::new(
        EndpointConfig::default(),
        vec![peer(
            "hq",
            Some(addr(RESPONDER).ip()),
            "branch.example",
            "hq.example",
        )],
        Provider::default(),
        Box::new(ChaCha8Rng::seed_from_u64(2)),
        epoch(),
    )
}

/// Makes IKE_SA_INIT requests from many addresses and sends every cookie straight back.
struct Attacker {
    rng: ChaCha8Rng,
    /// One real P-256 public value, reused: the responder's DH work is the same.
    ke: Vec<u8>,
    sources: Vec<SocketAddr>,
    next: usize,
    /// Full IKE_SA_INIT answers (the responder did a key exchange), by virtual second.
    full_answers: Vec<u64>,
}

impl Attacker {
    fn new(count: u32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let kex = Provider::default()
            .key_exchange(DhGroup::ECP_256.0)
            .unwrap()
            .start(&mut rng as &mut dyn Rng)
            .unwrap();
        let sources = (0..count)
            .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a63_0000 + i)), 500))
            .collect();
        Attacker {
            rng,
            ke: kex.public_key().to_vec(),
            sources,
            next: 0,
            full_answers: Vec::new(),
        }
    }

    fn request(&self, spi: IkeSpi, nonce: &[u8], cookie: Option<&[u8]>) -> Vec<u8> {
        let proposal = ike_proposal_gcm(DhGroup::ECP_256);
        let mut payloads = Vec::new();
        if let Some(c) = cookie {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::COOKIE,
                c,
            ))));
        }
        payloads.push(Payload::new(PayloadBody::Sa(ferrosec_wire::ikev2::Sa {
            proposals: vec![proposal.to_wire(1)],
        })));
        payloads.push(Payload::new(PayloadBody::Ke(KeyExchange {
            group: DhGroup::ECP_256,
            data: &self.ke,
        })));
        payloads.push(Payload::new(PayloadBody::Nonce(nonce)));
        Message {
            header: Header {
                initiator_spi: spi,
                responder_spi: IkeSpi(0),
                version: Version::IKEV2,
                exchange_type: ExchangeType::IKE_SA_INIT,
                flags: Flags::new(true, false),
                message_id: MessageId(0),
            },
            payloads,
        }
        .to_vec()
        .unwrap()
    }

    /// The next fresh request: (source, datagram).
    fn fresh(&mut self) -> (SocketAddr, Vec<u8>) {
        let src = self.sources[self.next % self.sources.len()];
        self.next += 1;
        let spi = IkeSpi(self.rng.next_u64() | 1);
        let mut nonce = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        (src, self.request(spi, &nonce, None))
    }

    /// What the attacker does with an answer: the request again with the cookie, at once.
    fn answer(&mut self, at: Instant, data: &[u8], original: &[u8]) -> Option<Vec<u8>> {
        let msg = Message::parse(data).ok()?;
        for p in &msg.payloads {
            match &p.body {
                PayloadBody::Notify(n) if n.ty == NotifyType::COOKIE => {
                    let orig = Message::parse(original).ok()?;
                    let nonce = orig.payloads.iter().find_map(|p| match &p.body {
                        PayloadBody::Nonce(n) => Some(n.to_vec()),
                        _ => None,
                    })?;
                    return Some(self.request(msg.header.initiator_spi, &nonce, Some(n.data)));
                }
                PayloadBody::Sa(_) => {
                    let sec = at.duration_since(epoch()).as_secs() as usize;
                    if self.full_answers.len() <= sec {
                        self.full_answers.resize(sec + 1, 0);
                    }
                    self.full_answers[sec] += 1;
                    return None;
                }
                _ => {}
            }
        }
        None
    }
}

struct Outcome {
    legit_up_after: Option<Duration>,
    max_half_open: usize,
    /// The most full IKE_SA_INIT answers (key exchanges) to attackers in one virtual
    /// second, from the third second on.
    max_full_answers_per_second: u64,
    reports: Vec<crate::halfopen::PressureReport>,
    stats: crate::halfopen::HalfOpenStats,
}

/// Floods `r` with `rate` requests per second from `sources` addresses for `secs`, the
/// legitimate peer initiating after 2 s; latency 5 ms each way for everyone.
fn flood(mut r: Endpoint, sources: u32, rate: u32, secs: u64) -> Outcome {
    let mut a = Attacker::new(sources);
    let mut l = legit();
    let latency = Duration::from_millis(5);
    let step = Duration::from_secs(1) / rate;
    let end = epoch() + Duration::from_secs(secs);
    let legit_start = epoch() + Duration::from_secs(2);
    let mut legit_started = false;
    let mut legit_up_after = None;
    // (arrival, to responder?, from, to, data, original request for attacker answers)
    let mut wire: std::collections::VecDeque<(Instant, bool, SocketAddr, SocketAddr, Vec<u8>)> =
        std::collections::VecDeque::new();
    // The last request sent by each attacker SPI's source, to answer cookies (SPI → request).
    let mut sent: std::collections::HashMap<u64, Vec<u8>> = std::collections::HashMap::new();
    let mut max_half_open = 0;
    let mut reports = Vec::new();
    let mut now = epoch();
    let mut next_flood = epoch();
    while now < end {
        if !legit_started && now >= legit_start {
            l.initiate(now, PeerId(0), addr(LEGIT), addr(RESPONDER))
                .unwrap();
            legit_started = true;
        }
        while now >= next_flood && next_flood < end {
            let (src, req) = a.fresh();
            let spi = Message::parse(&req).unwrap().header.initiator_spi.0;
            sent.insert(spi, req.clone());
            wire.push_back((next_flood + latency, true, src, addr(RESPONDER), req));
            next_flood += step;
        }
        // Deliver what has arrived (the queue is in send order; latency is constant).
        while wire.front().is_some_and(|w| w.0 <= now) {
            let (at, to_r, src, dst, data) = wire.pop_front().unwrap();
            if to_r {
                r.handle_datagram(at, dst, src, &data);
            } else if dst == addr(LEGIT) {
                l.handle_datagram(at, dst, src, &data);
            } else if let Ok(m) = Message::parse(&data) {
                let spi = m.header.initiator_spi.0;
                if let Some(orig) = sent.remove(&spi)
                    && let Some(again) = a.answer(at, &data, &orig)
                {
                    sent.insert(spi, again.clone());
                    wire.push_back((at + latency, true, dst, src, again));
                }
            }
        }
        if r.poll_timeout().is_some_and(|t| t <= now) {
            r.handle_timeout(now);
        }
        if l.poll_timeout().is_some_and(|t| t <= now) {
            l.handle_timeout(now);
        }
        while let Some(t) = r.poll_transmit() {
            wire.push_back((now + latency, false, t.local, t.remote, t.data));
        }
        while let Some(t) = l.poll_transmit() {
            wire.push_back((now + latency, true, t.local, t.remote, t.data));
        }
        while let Some(e) = r.poll_event() {
            if let Event::HalfOpenPressure(rep) = e {
                reports.push(rep);
            }
        }
        while let Some(e) = l.poll_event() {
            if matches!(e, Event::ChildSaUp(_)) && legit_up_after.is_none() {
                legit_up_after = Some(now.duration_since(legit_start));
            }
        }
        max_half_open = max_half_open.max(r.half_open_count());
        now += Duration::from_micros(250);
    }
    // One more interval so that the last report comes out.
    r.handle_timeout(now + Duration::from_secs(6));
    while let Some(e) = r.poll_event() {
        if let Event::HalfOpenPressure(rep) = e {
            reports.push(rep);
        }
    }
    Outcome {
        legit_up_after,
        max_half_open,
        // From the third second: the bucket starts full (one second's worth).
        max_full_answers_per_second: a.full_answers.iter().skip(2).copied().max().unwrap_or(0),
        reports,
        stats: r.half_open_stats(),
    }
}

/// The measurement: 100 real addresses returning every cookie at 2,000/s locked the
/// legitimate peer out once 1,000 half-open SAs existed. The per-address limit caps them at
/// 500; the legitimate peer is up within a round trip or two of its cookie.
#[test]
fn cookie_returning_flood_from_100_addresses_does_not_lock_out_a_legitimate_peer() {
    let o = flood(responder(1000, HalfOpenLimits::default()), 100, 2000, 12);
    let up = o.legit_up_after.expect("the legitimate peer never came up");
    assert!(
        up <= Duration::from_secs(5),
        "legitimate peer up after {up:?}"
    );
    assert!(
        o.max_half_open <= 100 * 5 + 1,
        "half-open SAs peaked at {}",
        o.max_half_open
    );
    assert!(o.stats.cookies_sent > 1000, "{:?}", o.stats);
    assert!(o.stats.refused_per_address > 1000, "{:?}", o.stats);
    // Summaries, not a line per packet: one report per 5 s interval at most.
    assert!(
        !o.reports.is_empty() && o.reports.len() <= 12 / 5 + 2,
        "{} reports",
        o.reports.len()
    );
    let first = &o.reports[0];
    assert!(
        first.per_address > 0 && first.top_sources.len() == 5,
        "{first:?}"
    );
    let legit_ip = addr(LEGIT).ip();
    assert!(
        o.reports
            .iter()
            .all(|r| r.top_sources.iter().all(|(ip, _)| *ip != legit_ip)),
        "the legitimate peer was refused"
    );
}

/// More addresses than the per-address limit can hold (2,000 × 5 > 1,000): the global limit
/// is reached; requests without a cookie still get one, and one with a valid cookie takes the
/// slot of a half-open SA older than a second, so the legitimate peer gets in.
#[test]
fn at_the_global_limit_old_half_open_sas_make_room_and_cookies_still_flow() {
    let o = flood(responder(1000, HalfOpenLimits::default()), 2000, 2000, 10);
    let up = o.legit_up_after.expect("the legitimate peer never came up");
    assert!(
        up <= Duration::from_secs(5),
        "legitimate peer up after {up:?}"
    );
    assert!(
        o.max_half_open <= 1000,
        "half-open peaked at {}",
        o.max_half_open
    );
    assert!(o.stats.evicted > 0, "{:?}", o.stats);
    assert!(o.stats.cookies_sent > 1000, "{:?}", o.stats);
}

/// The key-exchange budget holds under pressure: with 24 ms per second and P-256 at 60 µs,
/// no second sees more than 400 full answers, whatever the flood.
#[test]
fn key_exchanges_under_pressure_are_bounded_per_second() {
    let limits = HalfOpenLimits {
        dh_budget: Duration::from_millis(24),
        per_address: 0,
        ..Default::default()
    };
    let o = flood(responder(100_000, limits), 5000, 2000, 6);
    assert!(
        o.max_full_answers_per_second <= 400 + 50,
        "{} key exchanges in one second",
        o.max_full_answers_per_second
    );
    assert!(o.stats.refused_dh_rate > 0, "{:?}", o.stats);
}

/// Key exchanges as dear as in an unoptimised build (40 ms each against a 250 ms budget:
/// six a second): the flooding addresses soon count as suspects and get only half of the
/// budget, so the legitimate peer still finds some.
#[test]
fn dear_key_exchanges_still_leave_budget_for_a_legitimate_peer() {
    let mut r = responder(1000, HalfOpenLimits::default());
    r.set_dh_cost(DhGroup::ECP_256.0, Duration::from_millis(40));
    let o = flood(r, 100, 2000, 10);
    let up = o.legit_up_after.expect("the legitimate peer never came up");
    assert!(
        up <= Duration::from_secs(5),
        "legitimate peer up after {up:?}"
    );
    assert!(
        o.max_full_answers_per_second <= 7,
        "{} key exchanges in one second",
        o.max_full_answers_per_second
    );
    assert!(o.stats.refused_dh_rate > 0, "{:?}", o.stats);
}
