//! Admission of half-open IKE SAs under a flood (RFC 7296 §2.6; R-V2-5, R-CFG-10).
//!
//! Cookies ([`crate::v2::cookie`]) stop a flood from spoofed addresses: the attacker never sees
//! the cookie, so it never gets past the stateless answer. An attacker with *real* addresses
//! returns every cookie and so makes the responder do the key exchange and keep half-open
//! state. Left alone, a few such addresses fill the half-open table and lock every other
//! peer out. The [`HalfOpenGuard`] decides, for a request that has earned state (a valid
//! cookie, or no cookie needed), whether it gets it:
//!
//! 1. **Per address** (as strongSwan's `block_threshold`, default 5), while under pressure
//!    (half-open SAs at or above the cookie threshold): an address with that many half-open
//!    SAs gets no more until one completes or expires. Below the threshold many gateways
//!    behind one address may start at once.
//! 2. **Global limit** (`max-half-opened-sa`): a request without a valid cookie still gets a
//!    stateless cookie (never silence); one with a valid cookie takes the slot of the
//!    oldest half-open SA if that one is older than [`HalfOpenLimits::evict_after`] (a
//!    genuine initiator answers within a round trip), else it is refused.
//!
//! A *suspect* is an address that lately (15–30 s) let a half-open SA expire or be replaced
//! without IKE_AUTH, hit the per-address limit, asked for state while it already held two
//! half-open SAs (a genuine initiator waits for its answer), or started more than eight
//! negotiations (a genuine initiator starts one per IKE SA; the table holds 65,536 addresses
//! per generation, beyond which an address counts as clean). A suspect replaces nothing at
//! the global limit and gets only half of the key-exchange budget: the slots and the CPU go
//! to addresses that have not been wasting them, which is what lets a legitimate peer in
//! while a flood lasts.
//! 3. **Key-exchange time per second** while under pressure (half-open SAs at or above the
//!    cookie threshold): a token bucket of CPU time (default a quarter of one core), each
//!    group charged what one exchange costs ([`HalfOpenGuard::set_dh_cost`], measured by the
//!    daemon at start), so the IKE task stays responsive whatever the group and the build.
//!    Suspects (below) may use only the upper half of the bucket.
//!
//! Under pressure a new half-open SA also expires sooner ([`HalfOpenLimits::pressure_timeout`]
//! instead of the usual half-open timeout).
//!
//! Nothing is logged per packet: refusals are counted ([`HalfOpenStats`], for `show`) and
//! summarised once per [`HalfOpenLimits::report_interval`] in a [`PressureReport`] with the
//! top sources, from a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The most distinct sources remembered per report interval; the rest count as "others".
const MAX_TRACKED_SOURCES: usize = 1024;
/// Sources named in a report.
const TOP_SOURCES: usize = 5;
/// The most addresses remembered per generation.
const MAX_SUSPECTS: usize = 65_536;
/// New negotiations (IKE_SA_INIT without a cookie) from one address within one to two
/// generations beyond which it is a suspect: a genuine initiator makes one per IKE SA.
const MAX_NEW_PER_ADDRESS: u32 = 8;
/// What a wasted slot counts: at once over [`MAX_NEW_PER_ADDRESS`].
const WASTED: u32 = MAX_NEW_PER_ADDRESS + 1;
/// How long an address stays a suspect (one to two generations of this length).
const SUSPECT_GENERATION: Duration = Duration::from_secs(15);

/// Limits on half-open SAs beside the cookie configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfOpenLimits {
    /// The most half-open SAs one address may hold; 0 = no per-address limit (default 5,
    /// strongSwan's `block_threshold`).
    pub per_address: usize,
    /// Half-open timeout for SAs made while under pressure (default 5 s).
    pub pressure_timeout: Duration,
    /// At the global limit, a half-open SA older than this may be replaced (default 1 s).
    pub evict_after: Duration,
    /// Key-exchange time allowed per second while under pressure (default 250 ms: a quarter
    /// of one core); zero = no budget. The cost of each group is
    /// [`HalfOpenGuard::set_dh_cost`], measured by the daemon at start, or [`dh_cost`].
    pub dh_budget: Duration,
    /// How often refusals are summarised (default 5 s).
    pub report_interval: Duration,
}

impl Default for HalfOpenLimits {
    fn default() -> Self {
        HalfOpenLimits {
            per_address: 5,
            pressure_timeout: Duration::from_secs(5),
            evict_after: Duration::from_secs(1),
            dh_budget: Duration::from_millis(250),
            report_interval: Duration::from_secs(5),
        }
    }
}

/// An estimate of the time one responder key exchange of IANA group `group` takes
/// (x86-64, optimised build); the daemon replaces these with measured values at start.
/// Unknown groups count as the most expensive MODP.
pub fn dh_cost(group: u16) -> Duration {
    let p256_units = match group {
        19 | 31 => 1,      // P-256, X25519
        20 | 32 => 3,      // P-384, X448
        21 => 6,           // P-521
        35..=37 => 1,      // ML-KEM-512/768/1024
        1 | 2 => 2,        // MODP-768/1024
        5 => 4,            // MODP-1536
        14 | 22..=24 => 8, // MODP-2048 (and its subgroup variants)
        15 => 20,          // MODP-3072
        16 => 45,          // MODP-4096
        _ => 100,          // MODP-6144/8192 and anything unknown
    };
    Duration::from_micros(60) * p256_units
}

/// Why a request that had earned state was refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds [`HalfOpenLimits::per_address`] half-open SAs.
    PerAddress,
    /// The half-open table is full and no entry is old enough to replace.
    Global,
    /// The key-exchange budget of this second is spent.
    DhRate,
}

/// Counters since start, for `show vpn ike-counters`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HalfOpenStats {
    /// COOKIE notifies sent.
    pub cookies_sent: u64,
    /// Requests refused because their address held too many half-open SAs.
    pub refused_per_address: u64,
    /// Requests refused at the global half-open limit.
    pub refused_global: u64,
    /// Requests refused by the key-exchange budget.
    pub refused_dh_rate: u64,
    /// Half-open SAs replaced by a newer request at the global limit.
    pub evicted: u64,
}

/// One interval's summary, to be logged as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PressureReport {
    /// The interval it covers.
    pub interval: Duration,
    /// Requests refused in it, by reason.
    pub per_address: u64,
    /// See [`Refusal::Global`].
    pub global: u64,
    /// See [`Refusal::DhRate`].
    pub dh_rate: u64,
    /// Cookies sent in it.
    pub cookies_sent: u64,
    /// Half-open SAs replaced in it.
    pub evicted: u64,
    /// Half-open SAs at the time of the report.
    pub half_open: usize,
    /// The sources refused most, with their counts (at most five).
    pub top_sources: Vec<(IpAddr, u64)>,
    /// Refusals from sources not tracked (beyond the bounded table).
    pub others: u64,
}

impl PressureReport {
    /// Requests refused in the interval.
    pub fn refused(&self) -> u64 {
        self.per_address + self.global + self.dh_rate
    }
}

/// The per-interval tallies.
#[derive(Debug, Default)]
struct Interval {
    started: Option<Instant>,
    stats: HalfOpenStats,
    sources: HashMap<IpAddr, u64>,
    others: u64,
}

/// Counters, the key-exchange budget and the report interval (the half-open SAs themselves
/// and their per-address counts live in the engine's SA table).
#[derive(Debug)]
pub struct HalfOpenGuard {
    limits: HalfOpenLimits,
    total: HalfOpenStats,
    interval: Interval,
    /// Token bucket of key-exchange time (µs), and when it was last filled.
    tokens: f64,
    filled: Option<Instant>,
    /// Measured key-exchange cost per group (µs), overriding [`dh_cost`].
    costs: Vec<(u16, f64)>,
    /// Per address: new negotiations, and [`WASTED`] for a slot wasted; this generation and
    /// the last one, and when this generation started.
    suspects: (HashMap<IpAddr, u32>, HashMap<IpAddr, u32>, Option<Instant>),
}

impl HalfOpenGuard {
    /// A guard with these limits.
    pub fn new(limits: HalfOpenLimits) -> Self {
        HalfOpenGuard {
            limits,
            total: HalfOpenStats::default(),
            interval: Interval::default(),
            tokens: limits.dh_budget.as_secs_f64() * 1e6,
            filled: None,
            costs: Vec::new(),
            suspects: (HashMap::new(), HashMap::new(), None),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &HalfOpenLimits {
        &self.limits
    }

    /// Counters since start.
    pub fn stats(&self) -> HalfOpenStats {
        self.total
    }

    /// Whether `address_half_open` SAs from one address are its limit.
    pub fn address_full(&self, address_half_open: usize) -> bool {
        self.limits.per_address != 0 && address_half_open >= self.limits.per_address
    }

    /// Sets the measured cost of one key exchange of `group`.
    pub fn set_dh_cost(&mut self, group: u16, cost: Duration) {
        let us = cost.as_secs_f64() * 1e6;
        match self.costs.iter_mut().find(|(g, _)| *g == group) {
            Some(c) => c.1 = us,
            None => self.costs.push((group, us)),
        }
    }

    /// The cost of one key exchange of `group`, in µs.
    fn cost(&self, group: u16) -> f64 {
        self.costs
            .iter()
            .find(|(g, _)| *g == group)
            .map_or_else(|| dh_cost(group).as_secs_f64() * 1e6, |(_, c)| *c)
    }

    /// Takes the budget for one key exchange of `group` (under pressure only); false when
    /// the budget of the moment is spent. A `suspect` address may only use the upper half
    /// of the bucket: the lower half stays for addresses that have not been wasting slots,
    /// so a legitimate peer finds budget while a flood lasts.
    pub fn take_dh(&mut self, now: Instant, group: u16, suspect: bool) -> bool {
        let capacity = self.limits.dh_budget.as_secs_f64() * 1e6;
        if capacity == 0.0 {
            return true;
        }
        if let Some(t) = self.filled {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            self.tokens = (self.tokens + dt * capacity).min(capacity);
        }
        self.filled = Some(now);
        let cost = self.cost(group);
        let floor = if suspect { capacity / 2.0 } else { 0.0 };
        // A group dearer than the whole budget still gets one exchange per full bucket.
        let cost_here = cost.min(capacity - floor);
        if self.tokens - cost_here >= floor {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Records that a half-open SA from `ip` expired or was replaced without completing, or
    /// that `ip` otherwise behaved as a flood does (per-address limit, two half-open SAs).
    pub fn wasted(&mut self, now: Instant, ip: IpAddr) {
        self.count(now, ip, WASTED);
    }

    /// Records a new negotiation from `ip` (an IKE_SA_INIT request without a cookie).
    pub fn new_negotiation(&mut self, now: Instant, ip: IpAddr) {
        self.count(now, ip, 1);
    }

    fn count(&mut self, now: Instant, ip: IpAddr, n: u32) {
        self.rotate(now);
        let (current, _, _) = &mut self.suspects;
        let len = current.len();
        match current.get_mut(&ip) {
            Some(c) => *c = c.saturating_add(n),
            None if len < MAX_SUSPECTS => {
                current.insert(ip, n);
            }
            None => {}
        }
    }

    /// Whether `ip` wasted a half-open slot or started many negotiations lately (it then
    /// replaces no other SA and gets only half of the key-exchange budget).
    pub fn suspect(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.rotate(now);
        let (current, previous, _) = &self.suspects;
        let n = current
            .get(&ip)
            .copied()
            .unwrap_or(0)
            .saturating_add(previous.get(&ip).copied().unwrap_or(0));
        n > MAX_NEW_PER_ADDRESS
    }

    fn rotate(&mut self, now: Instant) {
        let (current, previous, started) = &mut self.suspects;
        match started {
            None => *started = Some(now),
            Some(t) if now.saturating_duration_since(*t) >= SUSPECT_GENERATION => {
                *previous = std::mem::take(current);
                if now.saturating_duration_since(*t) >= 2 * SUSPECT_GENERATION {
                    previous.clear();
                }
                *started = Some(now);
            }
            Some(_) => {}
        }
    }

    fn open(&mut self, now: Instant) {
        if self.interval.started.is_none() {
            self.interval.started = Some(now);
        }
    }

    /// Counts a cookie sent.
    pub fn cookie_sent(&mut self, now: Instant) {
        self.open(now);
        self.total.cookies_sent += 1;
        self.interval.stats.cookies_sent += 1;
    }

    /// Counts a half-open SA replaced by a newer request.
    pub fn evicted(&mut self, now: Instant) {
        self.open(now);
        self.total.evicted += 1;
        self.interval.stats.evicted += 1;
    }

    /// Counts a refusal of a request from `source`.
    pub fn refused(&mut self, now: Instant, source: IpAddr, why: Refusal) {
        self.open(now);
        for s in [&mut self.total, &mut self.interval.stats] {
            match why {
                Refusal::PerAddress => s.refused_per_address += 1,
                Refusal::Global => s.refused_global += 1,
                Refusal::DhRate => s.refused_dh_rate += 1,
            }
        }
        let tracked = self.interval.sources.len();
        match self.interval.sources.get_mut(&source) {
            Some(n) => *n += 1,
            None if tracked < MAX_TRACKED_SOURCES => {
                self.interval.sources.insert(source, 1);
            }
            None => self.interval.others += 1,
        }
    }

    /// When the current interval's report is due (none while nothing happened).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.interval
            .started
            .map(|t| t + self.limits.report_interval)
    }

    /// The report of the interval if it is over (and something was refused, replaced or
    /// challenged in it); starts a new interval.
    pub fn handle_timeout(&mut self, now: Instant, half_open: usize) -> Option<PressureReport> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        let iv = std::mem::take(&mut self.interval);
        let mut top: Vec<(IpAddr, u64)> = iv.sources.into_iter().collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(TOP_SOURCES);
        Some(PressureReport {
            interval: self.limits.report_interval,
            per_address: iv.stats.refused_per_address,
            global: iv.stats.refused_global,
            dh_rate: iv.stats.refused_dh_rate,
            cookies_sent: iv.stats.cookies_sent,
            evicted: iv.stats.evicted,
            half_open,
            top_sources: top,
            others: iv.others,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch() -> Instant {
        crate::sim::epoch()
    }

    #[test]
    fn per_address_limit_and_zero_means_none() {
        let g = HalfOpenGuard::new(HalfOpenLimits::default());
        assert!(!g.address_full(4));
        assert!(g.address_full(5));
        let g = HalfOpenGuard::new(HalfOpenLimits {
            per_address: 0,
            ..Default::default()
        });
        assert!(!g.address_full(1_000_000));
    }

    #[test]
    fn suspects_are_bounded_and_forgotten_after_two_generations() {
        let mut g = HalfOpenGuard::new(HalfOpenLimits::default());
        let t = epoch();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(!g.suspect(t, a));
        g.wasted(t, a);
        assert!(g.suspect(t, a));
        assert!(
            g.suspect(t + SUSPECT_GENERATION, a),
            "kept one more generation"
        );
        assert!(!g.suspect(t + 2 * SUSPECT_GENERATION, a), "then forgotten");
        for i in 0..(MAX_SUSPECTS as u32 + 10) {
            g.wasted(t, IpAddr::from(std::net::Ipv4Addr::from(i)));
        }
        assert_eq!(g.suspects.0.len(), MAX_SUSPECTS);
        // Many new negotiations make a suspect too; a few do not.
        let t = t + 4 * SUSPECT_GENERATION;
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..MAX_NEW_PER_ADDRESS {
            g.new_negotiation(t, b);
        }
        assert!(!g.suspect(t, b));
        g.new_negotiation(t, b);
        assert!(g.suspect(t, b));
    }

    #[test]
    fn dh_budget_refills_with_time_and_keeps_half_for_non_suspects() {
        let mut g = HalfOpenGuard::new(HalfOpenLimits {
            dh_budget: Duration::from_millis(100),
            ..Default::default()
        });
        g.set_dh_cost(14, Duration::from_millis(10));
        let t = epoch();
        // 100 ms of budget: a suspect gets the upper half (five MODP-2048 exchanges) ...
        for i in 0..5 {
            assert!(g.take_dh(t, 14, true), "exchange {i}");
        }
        assert!(!g.take_dh(t, 14, true), "suspects stop at half");
        // ... and the lower half stays for others.
        for i in 0..5 {
            assert!(g.take_dh(t, 14, false), "exchange {i}");
        }
        assert!(!g.take_dh(t, 14, false));
        // The default estimate for P-256 is 60 µs; nothing left at this instant.
        assert!(!g.take_dh(t, 19, false), "budget spent: not even P-256");
        // 10 ms later: 1 ms of budget, 16 P-256 exchanges of 60 µs.
        let t = t + Duration::from_millis(10);
        let mut n = 0;
        while g.take_dh(t, 19, false) {
            n += 1;
            assert!(n <= 17);
        }
        assert_eq!(n, 16);
        // Never more than one second's worth after a long pause.
        let t = t + Duration::from_secs(3600);
        let mut n = 0;
        while g.take_dh(t, 14, false) {
            n += 1;
            assert!(n <= 10);
        }
        assert_eq!(n, 10);
        // A group dearer than the whole budget: one exchange per full bucket, not never.
        g.set_dh_cost(18, Duration::from_millis(500));
        let t = t + Duration::from_secs(1);
        assert!(g.take_dh(t, 18, false));
        assert!(!g.take_dh(t + Duration::from_millis(100), 18, false));
    }

    #[test]
    fn reports_once_per_interval_with_top_sources_and_bounded_table() {
        let mut g = HalfOpenGuard::new(HalfOpenLimits::default());
        let t = epoch();
        assert_eq!(g.poll_timeout(), None, "no wake-ups while nothing happens");
        assert_eq!(g.handle_timeout(t + Duration::from_secs(60), 0), None);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..10 {
            g.refused(t, a, Refusal::PerAddress);
        }
        // More distinct sources than the table holds.
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            g.refused(t, ip, Refusal::Global);
        }
        g.cookie_sent(t);
        assert_eq!(g.interval.sources.len(), MAX_TRACKED_SOURCES);
        assert_eq!(g.poll_timeout(), Some(t + Duration::from_secs(5)));
        assert_eq!(g.handle_timeout(t + Duration::from_secs(4), 3), None);
        let r = g
            .handle_timeout(t + Duration::from_secs(5), 3)
            .expect("a report");
        assert_eq!(r.per_address, 10);
        assert_eq!(r.global, MAX_TRACKED_SOURCES as u64 + 100);
        assert_eq!(r.refused(), 10 + MAX_TRACKED_SOURCES as u64 + 100);
        assert_eq!(r.cookies_sent, 1);
        assert_eq!(r.half_open, 3);
        assert_eq!(r.top_sources[0], (a, 10));
        assert_eq!(r.top_sources.len(), TOP_SOURCES);
        assert_eq!(r.others, 101, "one tracked slot went to the first address");
        // The interval starts again; totals stay.
        assert_eq!(g.poll_timeout(), None);
        assert_eq!(g.stats().refused_per_address, 10);
        assert_eq!(g.stats().cookies_sent, 1);
    }
}
