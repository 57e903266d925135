//! Virtual routers with routing tables of their own (R-CFG-8): what the host needs so that
//! two virtual routers may hold the same prefix, on a kernel without VRF devices.
//!
//! The `default` virtual router is the host's main table and needs nothing here. Every other
//! one has its table ([`VirtualRouter::routing_table`]), and in it:
//! - for each member (its `interfaces` and the tunnel interfaces that name it), IPv4 and IPv6
//!   rules `iif MEMBER lookup TABLE` (packets arriving on it are routed by the router: LAN
//!   traffic into a tunnel, decrypted traffic out to the LAN) and `oif MEMBER lookup TABLE`
//!   (what the gateway sends through a socket bound to it, e.g. an IPv6 tunnel monitor);
//! - the members' connected prefixes, copied from their addresses (the kernel puts connected
//!   routes in the main table only), so that the router reaches its own links;
//! - `unreachable default` (IPv4 and IPv6) at the metric a VRF device's table ends with, so
//!   that what the router does not route is refused instead of falling through to the main
//!   table (another router's routes).
//!
//! The static routes themselves carry the table ([`ferrosec_netio::Route::table`]) and are
//! installed with the others (`crate::routes`). The pieces are installed before the routes
//! at start, compared at each reload (what is gone removed, what is new added) and removed
//! after the routes at shutdown, each with a system log line.

use std::fmt;
use std::net::IpAddr;

use ferrosec_config::Config;
use ferrosec_netio::{Route, Rule, RuleMatch};

use crate::syslog::{Severity, SharedLog};

/// One thing on the host that a virtual router's table needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A policy rule sending a member's packets to the table.
    Rule(Rule),
    /// A member's connected prefix, copied into the table.
    Connected(Route),
    /// The table's last route (IPv6 when true).
    Unreachable { table: u32, v6: bool },
}

impl fmt::Display for Piece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Piece::Rule(r) => write!(f, "{r}"),
            Piece::Connected(r) => write!(f, "connected route {r}"),
            Piece::Unreachable { table, v6 } => write!(
                f,
                "{} unreachable default in table {table}",
                if *v6 { "IPv6" } else { "IPv4" }
            ),
        }
    }
}

impl Piece {
    fn install(&self) -> Result<(), String> {
        match self {
            Piece::Rule(r) => ferrosec_netio::add_rule(r).map_err(|e| e.to_string()),
            Piece::Connected(r) => ferrosec_netio::replace_route(r).map_err(|e| e.to_string()),
            Piece::Unreachable { table, v6 } => {
                ferrosec_netio::replace_unreachable_default(*table, *v6).map_err(|e| e.to_string())
            }
        }
    }

    fn remove(&self) -> Result<(), String> {
        match self {
            Piece::Rule(r) => ferrosec_netio::delete_rule(r).map_err(|e| e.to_string()),
            Piece::Connected(r) => ferrosec_netio::delete_route(r).map_err(|e| e.to_string()),
            Piece::Unreachable { table, v6 } => {
                ferrosec_netio::delete_unreachable_default(*table, *v6).map_err(|e| e.to_string())
            }
        }
    }
}

/// What the virtual routers other than `default` need on the host, each piece with its
/// router, in the order to install them. `devices` are the tunnel interfaces that have a TUN
/// device now (only those can hold a route); `addresses` gives a physical interface's
/// addresses with their prefix lengths.
pub(crate) fn wanted(
    config: &Config,
    devices: &[&str],
    addresses: &dyn Fn(&str) -> Vec<(IpAddr, u8)>,
) -> Vec<(String, Piece)> {
    let mut v = Vec::new();
    for vr in config
        .virtual_routers
        .values()
        .filter(|vr| vr.routing_table != ferrosec_config::MAIN_TABLE)
    {
        let table = vr.routing_table;
        let tunnels: Vec<&ferrosec_config::TunnelInterface> = config
            .tunnel_interfaces
            .values()
            .filter(|t| t.virtual_router == vr.name)
            .collect();
        let members = vr
            .interfaces
            .iter()
            .map(String::as_str)
            .chain(tunnels.iter().map(|t| t.name.as_str()));
        for m in members {
            for matches in [RuleMatch::Incoming, RuleMatch::Outgoing] {
                for v6 in [false, true] {
                    v.push((
                        vr.name.clone(),
                        Piece::Rule(Rule {
                            interface: m.to_owned(),
                            matches,
                            v6,
                            table,
                        }),
                    ));
                }
            }
        }
        let connected = |interface: &str, addr: IpAddr, len: u8| {
            let destination = ipnet::IpNet::new(addr, len).ok()?.trunc();
            Some(Piece::Connected(Route {
                destination,
                interface: interface.to_owned(),
                next_hop: None,
                metric: 0,
                source: Some(addr),
                table,
            }))
        };
        for m in &vr.interfaces {
            for (addr, len) in addresses(m) {
                // Link-local prefixes are on every link; the kernel needs no copy of them.
                if matches!(addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80) {
                    continue;
                }
                if let Some(p) = connected(m, addr, len) {
                    v.push((vr.name.clone(), p));
                }
            }
        }
        for t in tunnels
            .iter()
            .filter(|t| devices.contains(&t.name.as_str()))
        {
            for n in &t.addresses {
                if let Some(p) = connected(&t.name, n.addr(), n.prefix_len()) {
                    v.push((vr.name.clone(), p));
                }
            }
        }
        for v6 in [false, true] {
            v.push((vr.name.clone(), Piece::Unreachable { table, v6 }));
        }
    }
    // The same prefix on two members of one router is one route.
    let mut seen = Vec::new();
    v.retain(|p| {
        let fresh = !seen.contains(p);
        if fresh {
            seen.push(p.clone());
        }
        fresh
    });
    v
}

/// The pieces installed, with their routers, in the order they were.
#[derive(Debug, Default)]
pub(crate) struct VrTables {
    installed: Vec<(String, Piece)>,
}

impl VrTables {
    /// Removes (the last installed first) what is installed and not in `wanted`; returns a
    /// line per change for a reload's summary (`virtual-router NAME`, what was done).
    pub(crate) fn remove_gone(
        &mut self,
        wanted: &[(String, Piece)],
        log: &SharedLog,
    ) -> Vec<(String, String)> {
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.installed)
            .into_iter()
            .partition(|p| wanted.contains(p));
        self.installed = keep;
        gone.into_iter()
            .rev()
            .map(|(router, piece)| remove_one(&router, &piece, log))
            .collect()
    }

    /// Installs what `wanted` has and is not installed yet, in its order; a line per change
    /// as [`VrTables::remove_gone`]. A failure is logged as an error and reported too.
    pub(crate) fn install(
        &mut self,
        wanted: Vec<(String, Piece)>,
        log: &SharedLog,
    ) -> Vec<(String, String)> {
        let mut done = Vec::new();
        for (router, piece) in wanted {
            if self.installed.contains(&(router.clone(), piece.clone())) {
                continue;
            }
            let source = format!("virtual-router {router}");
            match piece.install() {
                Ok(()) => {
                    let what = format!("{piece} installed");
                    log.record(Severity::Info, &source, what.clone());
                    done.push((source, what));
                    self.installed.push((router, piece));
                }
                Err(e) => {
                    log.record(Severity::Error, &source, e.clone());
                    done.push((source, e));
                }
            }
        }
        done
    }

    /// Removes everything installed, the last first (at shutdown, after the routes).
    pub(crate) fn remove_all(&mut self, log: &SharedLog) {
        for (router, piece) in std::mem::take(&mut self.installed).into_iter().rev() {
            remove_one(&router, &piece, log);
        }
    }
}

fn remove_one(router: &str, piece: &Piece, log: &SharedLog) -> (String, String) {
    let source = format!("virtual-router {router}");
    let what = match piece.remove() {
        Ok(()) => {
            let w = format!("{piece} removed");
            log.record(Severity::Info, &source, w.clone());
            w
        }
        Err(e) => {
            log.record(Severity::Warning, &source, e.clone());
            e
        }
    };
    (source, what)
}

/// The addresses of host interface `name` with their prefix lengths (`ip -o addr show dev`).
pub(crate) fn interface_addresses(name: &str) -> Vec<(IpAddr, u8)> {
    let out = std::process::Command::new("ip")
        .args(["-o", "addr", "show", "dev", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|t| *t == "inet" || *t == "inet6")?;
            let (a, len) = w.next()?.split_once('/')?;
            Some((a.parse().ok()?, len.parse().ok()?))
        })
        .collect()
}

/// Routers by name with the pieces they need, in words.
#[cfg(test)]
fn by_router(v: &[(String, Piece)]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut m: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for (r, p) in v {
        m.entry(r.clone()).or_default().push(p.to_string());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[ike-crypto-profile.p1]
[ipsec-crypto-profile.e1]
[ike-gateway.gw1]
version = "ikev2"
local-address = "192.0.2.1"
peer-address = "192.0.2.2"
pre-shared-key = "a long enough key"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[tunnel-interface."tunnel.2"]
zone = "vpn"
virtual-router = "red"
address = "169.254.0.1/30"
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw1"
[ipsec-tunnel.t2]
tunnel-interface = "tunnel.2"
ike-gateway = "gw1"
[virtual-router.default]
static-route = [{ name = "r1", destination = "10.2.0.0/24", interface = "tunnel.1" }]
[virtual-router.red]
interfaces = ["lan1"]
routing-table = 1001
static-route = [{ name = "r1", destination = "10.2.0.0/24", interface = "tunnel.2" }]
[zone.vpn]
[zone.trust]
interfaces = ["lan0", "lan1"]
"#;

    fn config() -> Config {
        ferrosec_config::load_str(CONFIG, "t.toml").unwrap().config
    }

    fn lan(name: &str) -> Vec<(IpAddr, u8)> {
        match name {
            "lan1" => vec![
                ("10.3.0.1".parse().unwrap(), 24),
                ("fd00:3::1".parse().unwrap(), 64),
                ("fe80::1".parse().unwrap(), 64),
            ],
            _ => vec![("10.1.0.1".parse().unwrap(), 24)],
        }
    }

    #[test]
    fn a_router_gets_rules_its_connected_prefixes_and_an_end() {
        let v = wanted(&config(), &["tunnel.1", "tunnel.2"], &lan);
        let m = by_router(&v);
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            ["red"],
            "default is the main table"
        );
        let red = &m["red"];
        for s in [
            "IPv4 rule iif lan1 lookup 1001",
            "IPv6 rule iif lan1 lookup 1001",
            "IPv4 rule oif lan1 lookup 1001",
            "IPv4 rule iif tunnel.2 lookup 1001",
            "IPv6 rule oif tunnel.2 lookup 1001",
            "connected route 10.3.0.0/24 via lan1 metric 0 table 1001",
            "connected route fd00:3::/64 via lan1 metric 0 table 1001",
            "connected route 169.254.0.0/30 via tunnel.2 metric 0 table 1001",
            "IPv4 unreachable default in table 1001",
            "IPv6 unreachable default in table 1001",
        ] {
            assert!(red.iter().any(|p| p == s), "{s} missing from {red:#?}");
        }
        assert_eq!(red.len(), 8 + 3 + 2, "{red:#?}");
        assert!(!red.iter().any(|p| p.contains("fe80")), "{red:#?}");
        assert!(!red.iter().any(|p| p.contains("tunnel.1")), "{red:#?}");
        // The prefsrc of a copied prefix is the member's address.
        assert!(v.iter().any(|(_, p)| matches!(p,
            Piece::Connected(r) if r.source == Some("10.3.0.1".parse().unwrap()))));
        // A tunnel interface without a device gets its rules (by name) but no route.
        let v = wanted(&config(), &["tunnel.1"], &lan);
        assert!(
            !by_router(&v)["red"]
                .iter()
                .any(|p| p.contains("via tunnel.2"))
        );
        assert!(
            by_router(&v)["red"]
                .iter()
                .any(|p| p == "IPv4 rule iif tunnel.2 lookup 1001")
        );
    }
}
