//! What a client's configuration payload brought (R-V2-12), put on the host: the address on
//! the gateway's tunnel interface, the subnets as routes through it (with the address as
//! their source, so that traffic leaves with the address the IPsec SA's selectors hold), all
//! taken away when the IKE SA goes. On the server, what it handed out is logged.
//!
//! An IKE SA rekey hands its addresses to the new SA; a re-authentication brings the same
//! address on a second IKE SA before the first goes, so an address or route stays while any
//! IKE SA holds it.

use super::*;
use crate::syslog::Severity;

/// Metric of the routes to the subnets a configuration payload carried: not the static
/// routes' default (10), so that neither replaces nor removes a configured route.
const SUBNET_METRIC: u32 = 20;

/// What one IKE SA put on the host.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    interface: String,
    /// The routing table of the interface's virtual router.
    table: u32,
    addresses: Vec<(IpAddr, u8)>,
    routes: Vec<(ipnet::IpNet, Option<IpAddr>)>,
}

impl IkeTask {
    /// An IKE SA came up with a configuration payload: log it, and on the client put the
    /// address and routes on the tunnel interface.
    pub(super) fn virtual_config_up(&mut self, info: &IkeSaInfo) {
        let Some(c) = info.config.clone() else {
            let asked = self
                .gateway_index(&info.peer)
                .and_then(|g| self.gateways[g].config_payload.as_ref())
                .is_some_and(|c| matches!(c, ferrosec_ike::v2::ConfigPayload::Request { .. }));
            if asked {
                self.log.record(
                    Severity::Warning,
                    &format!("ike-gateway {}", info.peer),
                    format!(
                        "we asked {} for an address (config-payload request = true), but its \
                         IKE_AUTH answer carried no configuration payload: the IPsec SAs use \
                         the selectors as negotiated (is a pool configured for us there?)",
                        info.remote
                    ),
                );
            }
            return;
        };
        self.tables
            .lock()
            .virtual_config
            .insert(info.handle, Arc::clone(&c));
        let words = |v: Vec<String>| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        let dns = words(c.dns.iter().map(IpAddr::to_string).collect());
        let subnets = words(c.subnets.iter().map(|(a, l)| format!("{a}/{l}")).collect());
        let obj = format!("ike-gateway {}", info.peer);
        if c.assigned_by_us {
            self.log.record(
                Severity::Info,
                &obj,
                format!(
                    "configuration payload: address {} assigned to peer {} ({}); DNS {dns}; \
                     subnets {subnets}",
                    c.addresses_text(),
                    info.peer_id,
                    info.remote
                ),
            );
            return;
        }
        if self.dataplane.is_none() {
            return;
        }
        let Some((iface, table)) = self.gateway_index(&info.peer).and_then(|g| {
            let gw = &self.gateways[g];
            gw.tunnel_interface.clone().map(|t| (t, gw.routing_table))
        }) else {
            return;
        };
        let source = |v6: bool| {
            c.addresses
                .iter()
                .map(|(a, _)| *a)
                .find(|a| a.is_ipv6() == v6)
        };
        let applied = Applied {
            interface: iface.clone(),
            table,
            addresses: c.addresses.clone(),
            routes: c
                .subnets
                .iter()
                .filter_map(|(a, l)| ipnet::IpNet::new(*a, *l).ok())
                .map(|n| (n, source(n.addr().is_ipv6())))
                .collect(),
        };
        let mut done = Vec::new();
        for (a, l) in &applied.addresses {
            if self.held(&iface, |x| x.addresses.contains(&(*a, *l))) {
                continue;
            }
            match ferrosec_netio::add_interface_address(&iface, *a, *l) {
                Ok(()) => done.push(format!("address {a}/{l} on {iface}")),
                Err(e) => self.log.record(
                    Severity::Error,
                    &obj,
                    format!("cannot put the assigned address {a}/{l} on {iface}: {e}"),
                ),
            }
        }
        for (n, src) in &applied.routes {
            if self.held(&iface, |x| x.routes.iter().any(|(m, _)| m == n)) {
                continue;
            }
            match ferrosec_netio::replace_route(&self.subnet_route(&iface, *n, *src, table)) {
                Ok(()) => done.push(format!(
                    "route {n} via {iface}{}",
                    src.map(|s| format!(" from {s}")).unwrap_or_default()
                )),
                Err(e) => self.log.record(
                    Severity::Error,
                    &obj,
                    format!("cannot route the assigned subnet: {e}"),
                ),
            }
        }
        self.log.record(
            Severity::Info,
            &obj,
            format!(
                "configuration payload from {}: address {}; DNS {dns} (not written to the \
                 resolver); subnets {subnets}{}",
                info.remote,
                c.addresses_text(),
                if done.is_empty() {
                    String::new()
                } else {
                    format!("; installed {}", done.join(", "))
                }
            ),
        );
        self.virtual_ips.insert(info.handle, applied);
    }

    /// An IKE SA was rekeyed: what it put on the host belongs to the new one.
    pub(super) fn virtual_config_rekeyed(&mut self, old: IkeSaHandle, new: &IkeSaInfo) {
        if let Some(c) = &new.config {
            self.tables
                .lock()
                .virtual_config
                .insert(new.handle, Arc::clone(c));
        }
        if let Some(a) = self.virtual_ips.remove(&old) {
            self.virtual_ips.insert(new.handle, a);
        }
    }

    /// An IKE SA went: what it put on the host goes, unless another IKE SA holds it too (a
    /// re-authentication's new SA).
    pub(super) fn virtual_config_down(&mut self, h: IkeSaHandle, peer: &str) {
        let Some(a) = self.virtual_ips.remove(&h) else {
            return;
        };
        let obj = format!("ike-gateway {peer}");
        let mut gone = Vec::new();
        for (n, src) in &a.routes {
            if self.held(&a.interface, |x| x.routes.iter().any(|(m, _)| m == n)) {
                continue;
            }
            match ferrosec_netio::delete_route(&self.subnet_route(&a.interface, *n, *src, a.table))
            {
                Ok(()) => gone.push(format!("route {n} via {}", a.interface)),
                Err(e) => self.log.record(Severity::Warning, &obj, e.to_string()),
            }
        }
        for (addr, l) in &a.addresses {
            if self.held(&a.interface, |x| x.addresses.contains(&(*addr, *l))) {
                continue;
            }
            match ferrosec_netio::remove_interface_address(&a.interface, *addr, *l) {
                Ok(()) => gone.push(format!("address {addr}/{l} from {}", a.interface)),
                Err(e) => self.log.record(
                    Severity::Warning,
                    &obj,
                    format!(
                        "cannot remove the assigned address {addr}/{l} from {}: {e}",
                        a.interface
                    ),
                ),
            }
        }
        if !gone.is_empty() {
            self.log.record(
                Severity::Info,
                &obj,
                format!(
                    "IKE SA gone: removed what its configuration payload installed ({})",
                    gone.join(", ")
                ),
            );
        }
    }

    /// Whether another IKE SA's configuration payload holds something on `iface`.
    fn held(&self, iface: &str, f: impl Fn(&Applied) -> bool) -> bool {
        self.virtual_ips
            .values()
            .any(|x| x.interface == iface && f(x))
    }

    fn subnet_route(
        &self,
        iface: &str,
        n: ipnet::IpNet,
        source: Option<IpAddr>,
        table: u32,
    ) -> ferrosec_netio::Route {
        ferrosec_netio::Route {
            destination: n,
            interface: iface.to_owned(),
            metric: SUBNET_METRIC,
            source,
            next_hop: None,
            table,
        }
    }
}
