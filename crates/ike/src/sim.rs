//! A deterministic two-peer network simulation (STYLE.md 9; quinn-proto's `tests/util.rs`
//! `Pair` is the model).
//!
//! Two [`SimEndpoint`]s exchange datagrams over a virtual link with a virtual clock. The link
//! has a latency, an MTU, and seeded faults: loss, duplication, reordering (random extra
//! delay) and tampering (a flipped byte), plus an arbitrary hook that can drop or rewrite any
//! datagram. Either side may sit behind a NAT that rewrites its address. Everything is driven
//! by a seeded ChaCha generator, so a failing seed replays exactly.
//!
//! Time only moves when the simulation advances it to the next event (a datagram arrival or
//! an endpoint's timeout), so minutes of protocol time pass in microseconds.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The interface of a sans-IO endpoint, as the simulation drives it.
pub trait SimEndpoint: std::fmt::Debug {
    /// What the endpoint reports.
    type Event: std::fmt::Debug;

    /// A datagram arrived on `local` from `remote`.
    fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]);
    /// Time has reached (at least) the deadline of [`SimEndpoint::poll_timeout`].
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// When [`SimEndpoint::handle_timeout`] should be called next.
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
}

pub use crate::Transmit;

/// The arbitrary instant the simulated clocks start at.
///
/// The engine never reads a clock; the simulation needs one `Instant` to start from and
/// reads the real clock once for it (the value itself never matters).
#[allow(clippy::disallowed_methods)]
pub fn epoch() -> Instant {
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Which of the two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Node `a`.
    A,
    /// Node `b`.
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// What a [`Faults::hook`] decides about a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it (possibly rewritten in place).
    Deliver,
    /// Drop it.
    Drop,
}

/// A hook that sees each datagram as it is sent (the sender, the bytes) and may rewrite or
/// drop it.
pub type Hook = Box<dyn FnMut(Side, &mut Vec<u8>) -> Verdict>;

/// Seeded faults of the link. Probabilities are in `0.0..=1.0`.
#[derive(Default)]
pub struct Faults {
    /// Chance that a datagram is lost.
    pub loss: f64,
    /// Chance that a datagram is delivered twice.
    pub duplicate: f64,
    /// Chance that a datagram gets an extra random delay of up to [`Faults::reorder_delay`],
    /// so it may arrive after later ones.
    pub reorder: f64,
    /// The most extra delay of a reordered datagram.
    pub reorder_delay: Duration,
    /// Chance that one random byte of a datagram is flipped.
    pub tamper: f64,
    /// A deterministic hook run before the random faults.
    pub hook: Option<Hook>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("loss", &self.loss)
            .field("duplicate", &self.duplicate)
            .field("reorder", &self.reorder)
            .field("reorder_delay", &self.reorder_delay)
            .field("tamper", &self.tamper)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// Counters of what the link did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams handed to the link.
    pub sent: u64,
    /// Datagrams delivered (duplicates count twice).
    pub delivered: u64,
    /// Lost by the random loss or the hook.
    pub dropped: u64,
    /// Dropped because they were larger than the MTU.
    pub too_big: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Datagrams with a flipped byte.
    pub tampered: u64,
    /// Datagrams given an extra delay.
    pub reordered: u64,
    /// Sent to an address the other node does not have ([`Pair::strict_addresses`]).
    pub misaddressed: u64,
}

/// One endpoint of the pair and what it has reported.
#[derive(Debug)]
pub struct Node<E: SimEndpoint> {
    /// The endpoint.
    pub endpoint: E,
    /// Its own address.
    pub addr: SocketAddr,
    /// The address the other side sees, if this node is behind a NAT. Each private source
    /// port gets its own public port, counting up from this one.
    pub nat: Option<SocketAddr>,
    /// NAT mappings made so far: (private, public).
    pub nat_map: Vec<(SocketAddr, SocketAddr)>,
    /// Events polled so far, oldest first.
    pub events: Vec<E::Event>,
    /// The virtual time each of [`Node::events`] was reported at.
    pub event_times: Vec<Instant>,
    /// Datagrams this node received (after faults), for inspection.
    pub received: u64,
}

impl<E: SimEndpoint> Node<E> {
    /// The address the peer sees for this node.
    pub fn public_addr(&self) -> SocketAddr {
        self.nat.unwrap_or(self.addr)
    }

    /// The source address after the NAT (a new mapping for a new private address).
    fn translate_out(&mut self, private: SocketAddr) -> SocketAddr {
        let Some(nat) = self.nat else {
            return private;
        };
        if let Some((_, public)) = self.nat_map.iter().find(|(p, _)| *p == private) {
            return *public;
        }
        let n = u16::try_from(self.nat_map.len()).unwrap_or(u16::MAX);
        let public = SocketAddr::new(nat.ip(), nat.port().wrapping_add(n));
        self.nat_map.push((private, public));
        public
    }

    /// The local address a datagram to `port` arrives on, through the NAT if there is one.
    fn translate_in(&self, port: u16) -> SocketAddr {
        if self.nat.is_some()
            && let Some((private, _)) = self.nat_map.iter().find(|(_, p)| p.port() == port)
        {
            return *private;
        }
        SocketAddr::new(self.addr.ip(), port)
    }
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    to: Side,
    src: SocketAddr,
    dst_port: u16,
    data: Vec<u8>,
}

/// Two endpoints on a simulated link.
#[derive(Debug)]
pub struct Pair<E: SimEndpoint> {
    /// Node `a`.
    pub a: Node<E>,
    /// Node `b`.
    pub b: Node<E>,
    /// The virtual clock.
    pub time: Instant,
    /// One-way latency.
    pub latency: Duration,
    /// The largest datagram the link carries.
    pub mtu: usize,
    /// Faults of the link.
    pub faults: Faults,
    /// What happened on the link.
    pub stats: LinkStats,
    /// Deliver only datagrams sent to the other node's (public) address; others are lost
    /// and counted in [`LinkStats::misaddressed`]. Off by default: the link then delivers
    /// whatever address a datagram names (a peer that moved is tested with this on).
    pub strict_addresses: bool,
    rng: ChaCha8Rng,
    in_flight: VecDeque<InFlight>,
    seq: u64,
}

impl<E: SimEndpoint> Pair<E> {
    /// Two endpoints at `a_addr` and `b_addr`, 10 ms apart, MTU 1500, no faults, the clock at
    /// [`epoch`], faults drawn from `seed`.
    pub fn new(a: E, a_addr: SocketAddr, b: E, b_addr: SocketAddr, seed: u64) -> Self {
        let node = |endpoint, addr| Node {
            endpoint,
            addr,
            nat: None,
            nat_map: Vec::new(),
            events: Vec::new(),
            event_times: Vec::new(),
            received: 0,
        };
        Pair {
            a: node(a, a_addr),
            b: node(b, b_addr),
            time: epoch(),
            latency: Duration::from_millis(10),
            mtu: 1500,
            faults: Faults::default(),
            stats: LinkStats::default(),
            strict_addresses: false,
            rng: ChaCha8Rng::seed_from_u64(seed),
            in_flight: VecDeque::new(),
            seq: 0,
        }
    }

    /// The node on `side`.
    pub fn node(&mut self, side: Side) -> &mut Node<E> {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits → uniform in [0, 1).
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// Collects transmits and events of both endpoints and puts the datagrams on the link.
    fn collect(&mut self) {
        for side in [Side::A, Side::B] {
            loop {
                let node = self.node(side);
                let Some(t) = node.endpoint.poll_transmit() else {
                    break;
                };
                let src = node.translate_out(t.local);
                if self.strict_addresses
                    && t.remote.ip() != self.node(side.other()).public_addr().ip()
                {
                    self.stats.sent += 1;
                    self.stats.misaddressed += 1;
                    continue;
                }
                self.send(side, src, t.remote.port(), t.data);
            }
            let now = self.time;
            let node = self.node(side);
            while let Some(e) = node.endpoint.poll_event() {
                node.events.push(e);
                node.event_times.push(now);
            }
        }
    }

    fn send(&mut self, from: Side, src: SocketAddr, dst_port: u16, mut data: Vec<u8>) {
        self.stats.sent += 1;
        if data.len() > self.mtu {
            self.stats.too_big += 1;
            return;
        }
        if let Some(hook) = &mut self.faults.hook
            && hook(from, &mut data) == Verdict::Drop
        {
            self.stats.dropped += 1;
            return;
        }
        if self.chance(self.faults.loss) {
            self.stats.dropped += 1;
            return;
        }
        if !data.is_empty() && self.chance(self.faults.tamper) {
            let len = data.len() as u64;
            let i = usize::try_from(self.rng.next_u64() % len).unwrap_or(0);
            let bit = 1u8 << (self.rng.next_u32() % 8);
            data[i] ^= bit;
            self.stats.tampered += 1;
        }
        let copies = if self.chance(self.faults.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = self.time + self.latency;
            if self.chance(self.faults.reorder) && !self.faults.reorder_delay.is_zero() {
                let max = self.faults.reorder_delay.as_nanos().max(1) as u64;
                at += Duration::from_nanos(self.rng.next_u64() % max);
                self.stats.reordered += 1;
            }
            self.seq += 1;
            let d = InFlight {
                at,
                seq: self.seq,
                to: from.other(),
                src,
                dst_port,
                data: data.clone(),
            };
            // Keep the queue sorted by (arrival, sequence).
            let pos = self
                .in_flight
                .iter()
                .position(|x| (x.at, x.seq) > (d.at, d.seq))
                .unwrap_or(self.in_flight.len());
            self.in_flight.insert(pos, d);
        }
    }

    /// When the next thing happens: a datagram arrives or an endpoint times out.
    pub fn next_wakeup(&mut self) -> Option<Instant> {
        let arrival = self.in_flight.front().map(|d| d.at);
        let ta = self.a.endpoint.poll_timeout();
        let tb = self.b.endpoint.poll_timeout();
        [arrival, ta, tb].into_iter().flatten().min()
    }

    /// Advances the clock to the next event (never past `limit`) and handles everything due
    /// then. Returns false when nothing is scheduled before `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.collect();
        let Some(next) = self.next_wakeup() else {
            return false;
        };
        if next > limit {
            return false;
        }
        self.time = self.time.max(next);
        let now = self.time;
        while self.in_flight.front().is_some_and(|d| d.at <= now) {
            let Some(d) = self.in_flight.pop_front() else {
                break;
            };
            self.stats.delivered += 1;
            let node = self.node(d.to);
            node.received += 1;
            // Delivered to the node's IP at the port the sender addressed (500 or 4500), or
            // to the private address a NAT mapping stands for.
            let local = node.translate_in(d.dst_port);
            node.endpoint.handle_datagram(now, local, d.src, &d.data);
            self.collect();
        }
        for side in [Side::A, Side::B] {
            let node = self.node(side);
            if node.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                node.endpoint.handle_timeout(now);
            }
        }
        self.collect();
        true
    }

    /// Runs until nothing is scheduled before `time + d`, then sets the clock there.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.time + d;
        self.run_until_time(limit);
    }

    /// Runs until nothing is scheduled before `limit`, then sets the clock to `limit`.
    pub fn run_until_time(&mut self, limit: Instant) {
        // Bounded: each step either moves the clock or handles something due; an endpoint
        // that keeps asking for a timeout in the past would spin, so cap the steps.
        for _ in 0..1_000_000 {
            if !self.step(limit) {
                break;
            }
        }
        self.time = self.time.max(limit);
    }

    /// Runs until `done` holds or `max` of simulated time has passed; returns whether `done`
    /// held.
    pub fn run_until(&mut self, max: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let limit = self.time + max;
        for _ in 0..1_000_000 {
            if done(self) {
                return true;
            }
            if !self.step(limit) {
                break;
            }
        }
        done(self)
    }

    /// Delivers everything in flight and everything that causes, without advancing past
    /// endpoint timeouts (quinn's `drive`). Timeouts due before the last arrival are handled.
    pub fn drive(&mut self) {
        for _ in 0..1_000_000 {
            self.collect();
            let Some(last) = self.in_flight.front().map(|d| d.at) else {
                break;
            };
            self.step(last);
        }
    }

    /// Datagrams still on the link.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Injects a datagram as if `from` had sent it (for replay and forgery tests).
    pub fn inject(&mut self, from: Side, dst_port: u16, data: Vec<u8>) {
        let src = self.node(from).public_addr();
        self.send(from, src, dst_port, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy endpoint: answers "ping N" with "pong N", sends a ping every second until
    /// `count` pongs arrived.
    #[derive(Debug)]
    struct Echo {
        addr: SocketAddr,
        peer: SocketAddr,
        out: VecDeque<Transmit>,
        events: VecDeque<String>,
        next_ping: Option<Instant>,
        sent: u32,
        pongs: u32,
        count: u32,
        seen_from: Vec<SocketAddr>,
        raw: Vec<Vec<u8>>,
    }

    impl Echo {
        fn new(addr: &str, peer: &str, pinger: bool) -> Self {
            Echo {
                addr: addr.parse().unwrap(),
                peer: peer.parse().unwrap(),
                out: VecDeque::new(),
                events: VecDeque::new(),
                next_ping: pinger.then(epoch),
                sent: 0,
                pongs: 0,
                count: 3,
                seen_from: Vec::new(),
                raw: Vec::new(),
            }
        }
    }

    impl SimEndpoint for Echo {
        type Event = String;

        fn handle_datagram(
            &mut self,
            _now: Instant,
            _local: SocketAddr,
            remote: SocketAddr,
            data: &[u8],
        ) {
            self.seen_from.push(remote);
            self.raw.push(data.to_vec());
            let text = String::from_utf8_lossy(data).into_owned();
            if let Some(n) = text.strip_prefix("ping ") {
                self.out.push_back(Transmit {
                    local: self.addr,
                    remote,
                    data: format!("pong {n}").into_bytes(),
                });
            } else if text.starts_with("pong ") {
                self.pongs += 1;
                self.events.push_back(text);
                if self.pongs >= self.count {
                    self.next_ping = None;
                }
            } else {
                self.events.push_back(format!("garbage {text}"));
            }
        }

        fn handle_timeout(&mut self, now: Instant) {
            if let Some(t) = self.next_ping
                && now >= t
            {
                self.sent += 1;
                self.out.push_back(Transmit {
                    local: self.addr,
                    remote: self.peer,
                    data: format!("ping {}", self.sent).into_bytes(),
                });
                self.next_ping = Some(now + Duration::from_secs(1));
            }
        }

        fn poll_transmit(&mut self) -> Option<Transmit> {
            self.out.pop_front()
        }

        fn poll_timeout(&mut self) -> Option<Instant> {
            self.next_ping
        }

        fn poll_event(&mut self) -> Option<String> {
            self.events.pop_front()
        }
    }

    fn pair(seed: u64) -> Pair<Echo> {
        Pair::new(
            Echo::new("192.0.2.1:500", "192.0.2.2:500", true),
            "192.0.2.1:500".parse().unwrap(),
            Echo::new("192.0.2.2:500", "192.0.2.1:500", false),
            "192.0.2.2:500".parse().unwrap(),
            seed,
        )
    }

    #[test]
    fn clean_link_delivers_in_order_with_latency() {
        let mut p = pair(1);
        assert!(p.run_until(Duration::from_secs(10), |p| p.a.endpoint.pongs >= 3));
        assert_eq!(p.a.events, ["pong 1", "pong 2", "pong 3"]);
        // Three round trips of 20 ms, started 1 s apart: the third pong lands at 2.02 s.
        assert_eq!(p.time - epoch(), Duration::from_millis(2020));
        assert_eq!(p.stats.sent, 6);
        assert_eq!(p.stats.delivered, 6);
    }

    #[test]
    fn loss_is_seeded_and_reproducible() {
        let run = |seed| {
            let mut p = pair(seed);
            p.faults.loss = 0.5;
            p.a.endpoint.count = 5;
            p.run_until(Duration::from_secs(60), |p| p.a.endpoint.pongs >= 5);
            (p.stats, p.a.events.clone())
        };
        let (s1, e1) = run(42);
        let (s2, e2) = run(42);
        assert_eq!(s1, s2);
        assert_eq!(e1, e2);
        assert!(s1.dropped > 0, "{s1:?}");
        assert_eq!(s1.sent, s1.delivered + s1.dropped);
    }

    #[test]
    fn duplication_and_reordering() {
        let mut p = pair(3);
        p.faults.duplicate = 1.0;
        p.a.endpoint.count = 2;
        p.run_until(Duration::from_secs(10), |p| p.a.endpoint.pongs >= 2);
        // Every ping arrives twice, each copy is answered, each answer arrives twice.
        assert_eq!(p.a.events[..4], ["pong 1", "pong 1", "pong 1", "pong 1"]);

        let mut p = pair(4);
        p.faults.reorder = 1.0;
        p.faults.reorder_delay = Duration::from_secs(5);
        p.a.endpoint.count = 6;
        p.run_until(Duration::from_secs(60), |p| p.a.endpoint.pongs >= 6);
        let mut sorted = p.a.events.clone();
        sorted.sort();
        assert_ne!(
            p.a.events, sorted,
            "with 5 s of jitter on 1 s pings some arrive out of order"
        );
        assert_eq!(p.stats.reordered, p.stats.sent);
    }

    #[test]
    fn tampering_mtu_hook_and_nat() {
        let mut p = pair(5);
        p.faults.tamper = 1.0;
        p.a.endpoint.count = 1;
        p.run_for(Duration::from_millis(100));
        assert_eq!(p.stats.tampered, p.stats.sent);
        assert_eq!(p.b.endpoint.raw.len(), 1);
        let got = &p.b.endpoint.raw[0];
        let diff: u32 = got
            .iter()
            .zip(b"ping 1")
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        assert_eq!(diff, 1, "exactly one bit flipped: {got:?}");

        let mut p = pair(6);
        p.mtu = 5;
        p.run_for(Duration::from_millis(100));
        assert_eq!(p.stats.too_big, 1);
        assert_eq!(p.b.received, 0);

        let mut p = pair(7);
        p.faults.hook = Some(Box::new(|side, data| {
            if side == Side::B {
                data.clear();
                data.extend_from_slice(b"pong 99");
            }
            Verdict::Deliver
        }));
        p.a.endpoint.count = 1;
        p.run_for(Duration::from_millis(100));
        assert_eq!(p.a.events, ["pong 99"]);

        let mut p = pair(8);
        p.a.nat = Some("203.0.113.7:40000".parse().unwrap());
        p.a.endpoint.count = 1;
        p.run_for(Duration::from_millis(100));
        assert_eq!(
            p.b.endpoint.seen_from,
            ["203.0.113.7:40000".parse().unwrap()]
        );
        assert_eq!(
            p.a.nat_map,
            [(
                "192.0.2.1:500".parse().unwrap(),
                "203.0.113.7:40000".parse().unwrap()
            )]
        );
        assert_eq!(p.a.events, ["pong 1"]);
    }
}
