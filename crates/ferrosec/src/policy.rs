//! Zones and security rules on the traffic entering and leaving tunnels (R-CFG-9, R-DP-9).
//!
//! A packet read from a tunnel interface leaves its LAN's zone for the tunnel interface's zone;
//! a decrypted packet enters the LAN's zone from the tunnel interface's zone. The LAN side's
//! zone is the zone of the interface the address is reached by (source when leaving,
//! destination when entering): the most specific of the prefixes connected to or routed
//! through a zoned interface, its default route included (read from the host at start and at
//! each reload), so a host behind a router on the LAN is in the LAN's zone as if the packet's
//! arrival interface were read. Rules are tried in order, the first match wins; without a
//! match, traffic within one zone passes and traffic between different zones is dropped. An
//! address reached by no zoned interface is not filtered (counted as `no-zone`).
//!
//! The compiled [`Policy`] is read-only and shared by the workers; hit counters are relaxed
//! atomics: no lock and no allocation per packet. A reload that changes zones or rules
//! compiles a new one and puts it in the [`LivePolicy`]; each worker looks at its generation
//! once per batch ([`PolicyView::refresh`]) and takes the new one (its hit counters start at
//! zero). SAs are not touched.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferrosec_config::Config;
use ferrosec_config::algo::RuleAction;
use ferrosec_config::model::ZoneMatch;
use ferrosec_config::value::{AddressSpec, Service};

/// An inclusive address range.
type Range = (IpAddr, IpAddr);

#[derive(Debug)]
struct Rule {
    name: String,
    from: Option<Vec<usize>>,
    to: Option<Vec<usize>>,
    source: Vec<Range>,
    destination: Vec<Range>,
    /// (protocol, first port, last port); empty = any.
    service: Vec<(u8, u16, u16)>,
    allow: bool,
    hits: AtomicU64,
}

/// The compiled zones and rules.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    /// Connected prefixes of zoned interfaces: (range, zone index).
    lan: Vec<(Range, usize)>,
    /// Tunnel interface name → zone index.
    tunnels: Vec<(String, usize)>,
    /// Tunnel interfaces that clamp the TCP MSS (R-DP-8), and how.
    mss: Vec<(String, ferrosec_config::MssClamp)>,
    rules: Vec<Rule>,
    intrazone: AtomicU64,
    default_deny: AtomicU64,
    no_zone: AtomicU64,
}

/// A row of `show security rules`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RuleRow {
    /// The rule's name, or `(intrazone-default)` / `(interzone-default)` / `(no-zone)`.
    pub(crate) name: String,
    /// `allow` or `deny`.
    pub(crate) action: String,
    /// Packets it decided.
    pub(crate) hits: u64,
}

/// Which way a packet crosses the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// Read from the tunnel interface: leaving the LAN into the tunnel.
    Leaving,
    /// Decrypted: entering the LAN from the tunnel.
    Entering,
}

fn ranges(specs: &[AddressSpec]) -> Vec<Range> {
    let mut v = Vec::new();
    for s in specs {
        for fam in [true, false] {
            if let Some(r) = s.bounds(fam) {
                v.push(r);
            }
        }
    }
    v
}

/// The first and last address of prefix `addr/len`.
fn prefix_range(addr: IpAddr, len: u8) -> Range {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            let n = u32::from(a) & mask;
            (
                IpAddr::from(n.to_be_bytes()),
                IpAddr::from((n | !mask).to_be_bytes()),
            )
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            let n = u128::from(a) & mask;
            (
                IpAddr::from(n.to_be_bytes()),
                IpAddr::from((n | !mask).to_be_bytes()),
            )
        }
    }
}

/// How many addresses a range spans less one (IPv4 ranges before IPv6 ones of the same size).
fn width(lo: IpAddr, hi: IpAddr) -> (u128, bool) {
    match (lo, hi) {
        (IpAddr::V4(l), IpAddr::V4(h)) => {
            (u128::from(u32::from(h).saturating_sub(u32::from(l))), false)
        }
        (IpAddr::V6(l), IpAddr::V6(h)) => (u128::from(h).saturating_sub(u128::from(l)), true),
        _ => (u128::MAX, true),
    }
}

fn in_ranges(rs: &[Range], a: IpAddr) -> bool {
    rs.iter()
        .any(|(lo, hi)| lo.is_ipv4() == a.is_ipv4() && *lo <= a && a <= *hi)
}

impl Policy {
    /// Compiles the configuration; `connected` gives the prefixes (address, length) of a host
    /// interface.
    pub(crate) fn new(config: &Config, connected: &dyn Fn(&str) -> Vec<(IpAddr, u8)>) -> Self {
        let zones: Vec<String> = config.zones.keys().cloned().collect();
        let index = |z: &str| zones.iter().position(|n| n == z);
        let mut lan = Vec::new();
        let mut tunnels = Vec::new();
        for (zi, z) in config.zones.values().enumerate() {
            for ifname in &z.interfaces {
                if config.tunnel_interfaces.contains_key(ifname) {
                    tunnels.push((ifname.clone(), zi));
                    continue;
                }
                for (addr, len) in connected(ifname) {
                    lan.push((prefix_range(addr, len), zi));
                }
                // Prefixes the virtual routers route through the interface (a LAN behind a
                // router), whether or not the host had the route when this was compiled.
                for r in config
                    .virtual_routers
                    .values()
                    .flat_map(|vr| &vr.static_routes)
                    .filter(|r| &r.interface == ifname)
                {
                    lan.push((
                        prefix_range(r.destination.addr(), r.destination.prefix_len()),
                        zi,
                    ));
                }
            }
        }
        let zm = |m: &ZoneMatch| match m {
            ZoneMatch::Any => None,
            ZoneMatch::Zones(v) => Some(v.iter().filter_map(|z| index(z)).collect()),
        };
        let rules = config
            .security_rules
            .iter()
            .filter(|r| !r.disabled)
            .map(|r| Rule {
                name: r.name.clone(),
                from: zm(&r.from),
                to: zm(&r.to),
                source: ranges(&r.source),
                destination: ranges(&r.destination),
                service: r
                    .service
                    .iter()
                    .filter_map(|s| match s {
                        Service::Any => None,
                        Service::Tcp(p) => Some((6, p.start, p.end)),
                        Service::Udp(p) => Some((17, p.start, p.end)),
                    })
                    .collect(),
                allow: r.action == RuleAction::Allow,
                hits: AtomicU64::new(0),
            })
            .collect::<Vec<_>>();
        // A rule whose service list holds `any` matches every service.
        let rules = rules
            .into_iter()
            .zip(
                &config
                    .security_rules
                    .iter()
                    .filter(|r| !r.disabled)
                    .collect::<Vec<_>>(),
            )
            .map(|(mut r, c)| {
                if c.service.iter().any(|s| matches!(s, Service::Any)) {
                    r.service.clear();
                }
                r
            })
            .collect();
        // The most specific prefix first: the first match is the longest.
        lan.sort_by_key(|((lo, hi), _): &(Range, usize)| width(*lo, *hi));
        let mss = config
            .tunnel_interfaces
            .values()
            .filter(|t| t.tcp_mss_clamp != ferrosec_config::MssClamp::Off)
            .map(|t| (t.name.clone(), t.tcp_mss_clamp))
            .collect();
        Policy {
            lan,
            tunnels,
            mss,
            rules,
            ..Policy::default()
        }
    }

    /// The zone index of tunnel interface `name`, for [`Policy::check`].
    pub(crate) fn tunnel_zone(&self, name: &str) -> Option<usize> {
        self.tunnels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, z)| *z)
    }

    /// How tunnel interface `name` clamps the TCP MSS (R-DP-8).
    pub(crate) fn tunnel_mss(&self, name: &str) -> ferrosec_config::MssClamp {
        self.mss
            .iter()
            .find(|(n, _)| n == name)
            .map_or(ferrosec_config::MssClamp::Off, |(_, m)| *m)
    }

    fn lan_zone(&self, a: IpAddr) -> Option<usize> {
        self.lan
            .iter()
            .find(|((lo, hi), _)| lo.is_ipv4() == a.is_ipv4() && *lo <= a && a <= *hi)
            .map(|(_, z)| *z)
    }

    /// Whether `packet` (an inner IPv4/IPv6 packet) may cross tunnel zone `tunnel` in `way`.
    pub(crate) fn check(&self, tunnel: Option<usize>, way: Way, packet: &[u8]) -> bool {
        let Some(tz) = tunnel else {
            self.no_zone.fetch_add(1, Ordering::Relaxed);
            return true;
        };
        let Some((src, dst, proto, dport)) = parse(packet) else {
            self.default_deny.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let lan = match way {
            Way::Leaving => src,
            Way::Entering => dst,
        };
        let Some(lz) = self.lan_zone(lan) else {
            self.no_zone.fetch_add(1, Ordering::Relaxed);
            return true;
        };
        let (from, to) = match way {
            Way::Leaving => (lz, tz),
            Way::Entering => (tz, lz),
        };
        for r in &self.rules {
            let zone_ok = |m: &Option<Vec<usize>>, z| m.as_ref().is_none_or(|v| v.contains(&z));
            if zone_ok(&r.from, from)
                && zone_ok(&r.to, to)
                && in_ranges(&r.source, src)
                && in_ranges(&r.destination, dst)
                && (r.service.is_empty()
                    || r.service
                        .iter()
                        .any(|(p, lo, hi)| *p == proto && (*lo..=*hi).contains(&dport)))
            {
                r.hits.fetch_add(1, Ordering::Relaxed);
                return r.allow;
            }
        }
        if from == to {
            self.intrazone.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            self.default_deny.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// The rules with their hit counts, then the defaults.
    pub(crate) fn rows(&self) -> Vec<RuleRow> {
        let row = |name: &str, allow: bool, c: &AtomicU64| RuleRow {
            name: name.to_owned(),
            action: if allow { "allow" } else { "deny" }.to_owned(),
            hits: c.load(Ordering::Relaxed),
        };
        let mut v: Vec<RuleRow> = self
            .rules
            .iter()
            .map(|r| row(&r.name, r.allow, &r.hits))
            .collect();
        v.push(row("(intrazone-default)", true, &self.intrazone));
        v.push(row("(interzone-default)", false, &self.default_deny));
        v.push(row("(no-zone)", true, &self.no_zone));
        v
    }
}

/// The policy in force, replaced whole by a reload.
#[derive(Debug, Default)]
pub(crate) struct LivePolicy {
    current: Mutex<Arc<Policy>>,
    generation: AtomicU64,
}

impl LivePolicy {
    pub(crate) fn new(p: Policy) -> Self {
        LivePolicy {
            current: Mutex::new(Arc::new(p)),
            generation: AtomicU64::new(0),
        }
    }

    /// The policy in force now.
    pub(crate) fn load(&self) -> Arc<Policy> {
        Arc::clone(&self.current.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `p` in force; the workers take it at their next batch.
    pub(crate) fn replace(&self, p: Policy) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(p);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A worker's copy of the policy in force: one atomic load per batch to see whether a reload
/// replaced it.
#[derive(Debug)]
pub(crate) struct PolicyView {
    live: Arc<LivePolicy>,
    generation: u64,
    policy: Arc<Policy>,
}

impl PolicyView {
    pub(crate) fn new(live: &Arc<LivePolicy>) -> Self {
        let generation = live.generation();
        PolicyView {
            live: Arc::clone(live),
            generation,
            policy: live.load(),
        }
    }

    /// Takes the policy a reload put in force, if any; true when it changed.
    pub(crate) fn refresh(&mut self) -> bool {
        let g = self.live.generation();
        if g == self.generation {
            return false;
        }
        self.generation = g;
        self.policy = self.live.load();
        true
    }

    /// The policy.
    pub(crate) fn get(&self) -> &Policy {
        &self.policy
    }
}

/// (source, destination, protocol, destination port) of an IPv4/IPv6 packet.
fn parse(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, u16)> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            let proto = *p.get(9)?;
            let frag = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]) & 0x1fff;
            let port = port(proto, if frag == 0 { p.get(ihl..) } else { None });
            Some((src.into(), dst.into(), proto, port))
        }
        6 => {
            let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            let proto = *p.get(6)?;
            Some((src.into(), dst.into(), proto, port(proto, p.get(40..))))
        }
        _ => None,
    }
}

fn port(proto: u8, l4: Option<&[u8]>) -> u16 {
    match (proto, l4.and_then(|b| b.get(2..4))) {
        (6 | 17, Some(b)) => u16::from_be_bytes([b[0], b[1]]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
[ike-gateway.g]
version = "ikev2"
local-address = "198.51.100.1"
peer-address = "198.51.100.2"
pre-shared-key = "a-long-enough-test-key"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[ipsec-tunnel.t]
tunnel-interface = "tunnel.1"
ike-gateway = "g"
proxy-id = [ { name = "p", local = "10.1.0.0/24", remote = "10.2.0.0/24" } ]
[zone.trust]
interfaces = ["lan0"]
[zone.vpn]
interfaces = ["tunnel.1"]
[[security-rule]]
name = "no-ssh"
from = ["trust"]
to = ["vpn"]
source = ["any"]
destination = ["any"]
service = "tcp/22"
action = "deny"
[[security-rule]]
name = "out"
from = ["trust"]
to = ["vpn"]
source = ["10.1.0.0/24"]
destination = ["10.2.0.0/24"]
service = "any"
action = "allow"
"#;

    fn tcp4(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[0x30, 0x39]);
        p.extend_from_slice(&dport.to_be_bytes());
        p.resize(40, 0);
        p
    }

    #[test]
    fn first_match_wins_and_defaults_apply() {
        let config = match ferrosec_config::load_str(CONF, "test") {
            Ok(l) => l.config,
            Err(e) => panic!("{e}"),
        };
        let pol = Policy::new(&config, &|ifname| {
            if ifname == "lan0" {
                vec![("10.1.0.1".parse().unwrap(), 24)]
            } else {
                vec![]
            }
        });
        let vpn = pol.tunnel_zone("tunnel.1");
        assert!(vpn.is_some());
        // Allowed by "out".
        assert!(pol.check(vpn, Way::Leaving, &tcp4([10, 1, 0, 10], [10, 2, 0, 10], 80)));
        // Denied first by "no-ssh".
        assert!(!pol.check(vpn, Way::Leaving, &tcp4([10, 1, 0, 10], [10, 2, 0, 10], 22)));
        // Entering (vpn -> trust): no rule, different zones: default deny.
        assert!(!pol.check(
            vpn,
            Way::Entering,
            &tcp4([10, 2, 0, 10], [10, 1, 0, 10], 80)
        ));
        // An address on no zoned interface: not filtered.
        assert!(pol.check(vpn, Way::Leaving, &tcp4([10, 9, 0, 1], [10, 2, 0, 10], 22)));
        let rows = pol.rows();
        let hits = |n: &str| rows.iter().find(|r| r.name == n).map(|r| r.hits);
        assert_eq!(hits("no-ssh"), Some(1));
        assert_eq!(hits("out"), Some(1));
        assert_eq!(hits("(interzone-default)"), Some(1));
        assert_eq!(hits("(no-zone)"), Some(1));
    }

    /// Zones come from the interface an address is reached by: a host behind a router on
    /// the LAN (a routed prefix of lan0) is in trust and filtered as trust, an address reached
    /// by the default route through wan0 is in untrust, and the most specific prefix wins.
    #[test]
    fn a_routed_lan_host_is_in_its_interfaces_zone() {
        // "core" sorts before "trust": the first zone's wide prefix must not win.
        let text = format!(
            "{CONF}[zone.untrust]\ninterfaces = [\"wan0\"]\n[zone.core]\ninterfaces = [\"lan1\"]\n"
        );
        let config = match ferrosec_config::load_str(&text, "test") {
            Ok(l) => l.config,
            Err(e) => panic!("{e}"),
        };
        let pol = Policy::new(&config, &|ifname| match ifname {
            // Connected, and a routed LAN behind a router.
            "lan0" => vec![
                ("10.1.0.1".parse().unwrap(), 24),
                ("10.1.9.0".parse().unwrap(), 24),
            ],
            // The rest of the 10/8 network, routed the other way.
            "lan1" => vec![("10.0.0.0".parse().unwrap(), 8)],
            "wan0" => vec![
                ("198.51.100.1".parse().unwrap(), 24),
                ("0.0.0.0".parse().unwrap(), 0),
            ],
            _ => vec![],
        });
        let vpn = pol.tunnel_zone("tunnel.1");
        // The routed host: trust -> vpn, so "no-ssh" denies it (no-zone let it pass before).
        assert!(!pol.check(vpn, Way::Leaving, &tcp4([10, 1, 9, 10], [10, 2, 0, 10], 22)));
        // Not in "out"'s sources: the default deny between trust and vpn.
        assert!(!pol.check(vpn, Way::Leaving, &tcp4([10, 1, 9, 10], [10, 2, 0, 10], 80)));
        // A connected host matches "out" (10.1.0.0/24 is more specific than core's 10/8).
        assert!(pol.check(vpn, Way::Leaving, &tcp4([10, 1, 0, 10], [10, 2, 0, 10], 80)));
        // Reached by the default route through wan0: untrust -> vpn, default deny.
        assert!(!pol.check(
            vpn,
            Way::Leaving,
            &tcp4([203, 0, 113, 5], [10, 2, 0, 10], 80)
        ));
        let rows = pol.rows();
        let hits = |n: &str| rows.iter().find(|r| r.name == n).map(|r| r.hits);
        assert_eq!(hits("no-ssh"), Some(1));
        assert_eq!(hits("out"), Some(1));
        assert_eq!(hits("(interzone-default)"), Some(2));
        assert_eq!(hits("(no-zone)"), Some(0));
    }

    /// A reload puts a new policy in force: a worker's view keeps its copy until it looks
    /// (once per batch), then takes the new one, once.
    #[test]
    fn a_reloaded_policy_reaches_the_workers_at_their_next_batch() {
        let lan = |ifname: &str| {
            if ifname == "lan0" {
                vec![("10.1.0.1".parse().unwrap(), 24)]
            } else {
                vec![]
            }
        };
        let load = |t: &str| match ferrosec_config::load_str(t, "test") {
            Ok(l) => l.config,
            Err(e) => panic!("{e}"),
        };
        let live = Arc::new(LivePolicy::new(Policy::new(&load(CONF), &lan)));
        let mut view = PolicyView::new(&live);
        assert!(!view.refresh(), "nothing new");
        let ssh = tcp4([10, 1, 0, 10], [10, 2, 0, 10], 22);
        let zone = view.get().tunnel_zone("tunnel.1");
        assert!(!view.get().check(zone, Way::Leaving, &ssh));
        // The file without the rule.
        let without = CONF.replace("service = \"tcp/22\"", "service = \"tcp/23\"");
        live.replace(Policy::new(&load(&without), &lan));
        assert!(
            !view.get().check(zone, Way::Leaving, &ssh),
            "the old one until the next look"
        );
        assert!(view.refresh());
        assert!(!view.refresh(), "taken once");
        assert!(view.get().check(zone, Way::Leaving, &ssh));
        assert_eq!(live.load().rows()[0].hits, 0, "counters start anew");
    }
}
