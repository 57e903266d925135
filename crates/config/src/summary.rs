//! The summary `ferrosec config check` prints: every object, its key settings and its
//! references. `Display` is the text form, `Serialize` the `--json` form. No key material.

use std::fmt;

use serde::Serialize;

use crate::model::*;
use crate::value::{format_duration, format_size};

/// A summary of a loaded configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `[global]`.
    pub global: GlobalSummary,
    /// IKE crypto profiles (defined, and built-in ones in use).
    pub ike_crypto_profiles: Vec<IkeProfileSummary>,
    /// IPSec crypto profiles (defined, and built-in ones in use).
    pub ipsec_crypto_profiles: Vec<IpsecProfileSummary>,
    /// IKE gateways.
    pub ike_gateways: Vec<GatewaySummary>,
    /// Tunnel interfaces.
    pub tunnel_interfaces: Vec<TunnelInterfaceSummary>,
    /// IPSec tunnels.
    pub ipsec_tunnels: Vec<TunnelSummary>,
    /// Monitor profiles.
    pub monitor_profiles: Vec<MonitorProfileSummary>,
    /// Virtual routers and their static routes.
    pub virtual_routers: Vec<VirtualRouterSummary>,
    /// Zones and their interfaces.
    pub zones: Vec<ZoneSummary>,
    /// Security rules in order.
    pub security_rules: Vec<RuleSummary>,
}

/// `[global]` in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobalSummary {
    /// Control socket path.
    pub control_socket: String,
    /// Log file path.
    pub log_file: Option<String>,
    /// Cookie activation threshold.
    pub cookie_activation_threshold: u32,
    /// Maximum half-open SAs.
    pub max_half_opened_sa: u32,
    /// Maximum half-open SAs from one address.
    pub max_half_opened_sa_per_address: u32,
    /// NAT keepalive interval, e.g. `20s`.
    pub nat_keepalive_interval: String,
    /// Whether the SAs' keys may be exported for Wireshark.
    pub allow_key_export: bool,
    /// Raw ESP received through a packet ring (over IPv6 only with the early drop).
    pub esp_packet_ring: bool,
    /// Raw ESP (IPv4 and IPv6) sent through a packet socket.
    pub esp_packet_socket: bool,
    /// Raw ESP the ring has read dropped before IP input.
    pub esp_early_drop: bool,
}

/// An IKE crypto profile in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IkeProfileSummary {
    /// Name.
    pub name: String,
    /// Built-in preset.
    pub builtin: bool,
    /// Ciphers.
    pub encryption: Vec<String>,
    /// Hashes.
    pub authentication: Vec<String>,
    /// DH groups.
    pub dh_group: Vec<String>,
    /// Lifetime, e.g. `8h`.
    pub lifetime: String,
    /// Re-authentication multiple.
    pub authentication_multiple: u8,
}

/// An IPSec crypto profile in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpsecProfileSummary {
    /// Name.
    pub name: String,
    /// Built-in preset.
    pub builtin: bool,
    /// `esp` or `ah`.
    pub protocol: String,
    /// Ciphers.
    pub encryption: Vec<String>,
    /// Integrity algorithms.
    pub authentication: Vec<String>,
    /// PFS group or `no-pfs`.
    pub dh_group: String,
    /// Lifetime.
    pub lifetime: String,
    /// Lifesize, e.g. `50GB`.
    pub lifesize: Option<String>,
}

/// An IKE gateway in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewaySummary {
    /// Name.
    pub name: String,
    /// `ikev1`, `ikev2` or `ikev2-preferred`.
    pub version: String,
    /// Local address (or `any`) and interface.
    pub local: String,
    /// Peer address, FQDN or `dynamic`.
    pub peer: String,
    /// `pre-shared-key` or `certificate` (never the key).
    pub authentication: String,
    /// Local ID as `type:value`.
    pub local_id: Option<String>,
    /// Peer ID as `type:value`.
    pub peer_id: Option<String>,
    /// The IKE crypto profile's name.
    pub ike_crypto_profile: String,
    /// NAT traversal.
    pub nat_traversal: bool,
    /// Passive mode.
    pub passive_mode: bool,
    /// Fragmentation.
    pub fragmentation: bool,
    /// TCP encapsulation (RFC 9329): `no`, `fallback` or `always`.
    pub tcp_encapsulation: String,
    /// Its TCP port.
    pub tcp_port: u16,
    /// Tunnels using this gateway.
    pub ipsec_tunnels: Vec<String>,
}

/// A tunnel interface in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelInterfaceSummary {
    /// Name.
    pub name: String,
    /// Zone.
    pub zone: String,
    /// Virtual router.
    pub virtual_router: String,
    /// Addresses.
    pub addresses: Vec<String>,
    /// MTU.
    pub mtu: u16,
    /// Tunnels bound to it.
    pub ipsec_tunnels: Vec<String>,
}

/// An IPSec tunnel in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelSummary {
    /// Name.
    pub name: String,
    /// `auto-key` or `manual-key`.
    #[serde(rename = "type")]
    pub tunnel_type: String,
    /// Tunnel interface.
    pub tunnel_interface: String,
    /// IKE gateway (auto-key).
    pub ike_gateway: Option<String>,
    /// The gateway's IKE crypto profile (auto-key).
    pub ike_crypto_profile: Option<String>,
    /// IPSec crypto profile (auto-key).
    pub ipsec_crypto_profile: Option<String>,
    /// Manual-key SPIs as `local/remote` (manual-key).
    pub spis: Option<String>,
    /// Proxy IDs as configured.
    pub proxy_ids: Vec<ProxyIdSummary>,
    /// Tunnel monitor as `source → destination (profile)`.
    pub tunnel_monitor: Option<String>,
    /// Anti-replay window, `None` = off.
    pub replay_window: Option<u32>,
}

/// A proxy ID in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyIdSummary {
    /// Name.
    pub name: String,
    /// Local selector.
    pub local: String,
    /// Remote selector.
    pub remote: String,
    /// Protocol.
    pub protocol: String,
    /// Local ports.
    pub local_port: String,
    /// Remote ports.
    pub remote_port: String,
}

/// A monitor profile in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitorProfileSummary {
    /// Name.
    pub name: String,
    /// Built in.
    pub builtin: bool,
    /// Interval.
    pub interval: String,
    /// Threshold.
    pub threshold: u32,
    /// Action.
    pub action: String,
}

/// A virtual router in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualRouterSummary {
    /// Name.
    pub name: String,
    /// Static routes.
    pub static_routes: Vec<RouteSummary>,
}

/// A static route in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSummary {
    /// Name.
    pub name: String,
    /// Destination.
    pub destination: String,
    /// Interface.
    pub interface: String,
    /// Next hop.
    pub next_hop: Option<String>,
    /// Metric.
    pub metric: u32,
}

/// A zone in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneSummary {
    /// Name.
    pub name: String,
    /// Interfaces.
    pub interfaces: Vec<String>,
}

/// A security rule in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSummary {
    /// Name.
    pub name: String,
    /// Source zones.
    pub from: Vec<String>,
    /// Destination zones.
    pub to: Vec<String>,
    /// Source addresses.
    pub source: Vec<String>,
    /// Destination addresses.
    pub destination: Vec<String>,
    /// Services.
    pub service: Vec<String>,
    /// `allow` or `deny`.
    pub action: String,
    /// Disabled.
    pub disabled: bool,
}

fn names<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn zones(z: &ZoneMatch) -> Vec<String> {
    match z {
        ZoneMatch::Any => vec!["any".to_owned()],
        ZoneMatch::Zones(z) => z.clone(),
    }
}

impl Config {
    /// The summary of this configuration (what `ferrosec config check` prints).
    pub fn summary(&self) -> Summary {
        let g = &self.global;
        Summary {
            global: GlobalSummary {
                control_socket: g.control_socket.display().to_string(),
                log_file: g.log_file.as_ref().map(|p| p.display().to_string()),
                cookie_activation_threshold: g.cookie_activation_threshold,
                max_half_opened_sa: g.max_half_opened_sa,
                max_half_opened_sa_per_address: g.max_half_opened_sa_per_address,
                nat_keepalive_interval: format_duration(g.nat_keepalive_interval),
                allow_key_export: g.allow_key_export,
                esp_packet_ring: g.raw_esp.packet_ring,
                esp_packet_socket: g.raw_esp.packet_socket,
                esp_early_drop: g.raw_esp.early_drop,
            },
            ike_crypto_profiles: self
                .ike_crypto_profiles
                .values()
                .map(|p| IkeProfileSummary {
                    name: p.name.clone(),
                    builtin: p.builtin,
                    encryption: names(&p.encryption),
                    authentication: names(&p.authentication),
                    dh_group: names(&p.dh_groups),
                    lifetime: format_duration(p.lifetime),
                    authentication_multiple: p.authentication_multiple,
                })
                .collect(),
            ipsec_crypto_profiles: self
                .ipsec_crypto_profiles
                .values()
                .map(|p| IpsecProfileSummary {
                    name: p.name.clone(),
                    builtin: p.builtin,
                    protocol: p.protocol.to_string(),
                    encryption: names(&p.encryption),
                    authentication: names(&p.authentication),
                    dh_group: p.pfs.map_or_else(|| "no-pfs".to_owned(), |g| g.to_string()),
                    lifetime: format_duration(p.lifetime),
                    lifesize: p.lifesize.map(format_size),
                })
                .collect(),
            ike_gateways: self
                .ike_gateways
                .values()
                .map(|gw| GatewaySummary {
                    name: gw.name.clone(),
                    version: gw.version.to_string(),
                    local: match (&gw.local_address, &gw.interface) {
                        (Some(a), Some(i)) => format!("{a} ({i})"),
                        (Some(a), None) => a.to_string(),
                        (None, Some(i)) => format!("any ({i})"),
                        (None, None) => "any".to_owned(),
                    },
                    peer: match &gw.peer {
                        PeerAddress::Ip(ip) => ip.to_string(),
                        PeerAddress::Fqdn(f) => f.clone(),
                        PeerAddress::Dynamic => "dynamic".to_owned(),
                    },
                    authentication: match &gw.authentication {
                        GatewayAuth::PreSharedKey(_) => "pre-shared-key".to_owned(),
                        GatewayAuth::Certificate(_) => "certificate".to_owned(),
                    },
                    local_id: gw
                        .local_id
                        .as_ref()
                        .map(|i| format!("{}:{}", i.id_type, i.value)),
                    peer_id: gw
                        .peer_id
                        .as_ref()
                        .map(|i| format!("{}:{}", i.id_type, i.value)),
                    ike_crypto_profile: gw.crypto.name.clone(),
                    nat_traversal: gw.nat_traversal,
                    passive_mode: gw.passive_mode,
                    fragmentation: gw.fragmentation,
                    tcp_encapsulation: gw.tcp_encapsulation.to_string(),
                    tcp_port: gw.tcp_port,
                    ipsec_tunnels: self
                        .tunnels_of_gateway(&gw.name)
                        .map(|t| t.name.clone())
                        .collect(),
                })
                .collect(),
            tunnel_interfaces: self
                .tunnel_interfaces
                .values()
                .map(|t| TunnelInterfaceSummary {
                    name: t.name.clone(),
                    zone: t.zone.clone(),
                    virtual_router: t.virtual_router.clone(),
                    addresses: names(&t.addresses),
                    mtu: t.mtu,
                    ipsec_tunnels: self
                        .ipsec_tunnels
                        .values()
                        .filter(|x| x.tunnel_interface == t.name)
                        .map(|x| x.name.clone())
                        .collect(),
                })
                .collect(),
            ipsec_tunnels: self
                .ipsec_tunnels
                .values()
                .map(|t| self.tunnel_summary(t))
                .collect(),
            monitor_profiles: self
                .monitor_profiles
                .values()
                .map(|m| MonitorProfileSummary {
                    name: m.name.clone(),
                    builtin: m.builtin,
                    interval: format_duration(m.interval),
                    threshold: m.threshold,
                    action: m.action.to_string(),
                })
                .collect(),
            virtual_routers: self
                .virtual_routers
                .values()
                .map(|v| VirtualRouterSummary {
                    name: v.name.clone(),
                    static_routes: v
                        .static_routes
                        .iter()
                        .map(|r| RouteSummary {
                            name: r.name.clone(),
                            destination: r.destination.to_string(),
                            interface: r.interface.clone(),
                            next_hop: r.next_hop.map(|n| n.to_string()),
                            metric: r.metric,
                        })
                        .collect(),
                })
                .collect(),
            zones: self
                .zones
                .values()
                .map(|z| ZoneSummary {
                    name: z.name.clone(),
                    interfaces: z.interfaces.clone(),
                })
                .collect(),
            security_rules: self
                .security_rules
                .iter()
                .map(|r| RuleSummary {
                    name: r.name.clone(),
                    from: zones(&r.from),
                    to: zones(&r.to),
                    source: names(&r.source),
                    destination: names(&r.destination),
                    service: names(&r.service),
                    action: r.action.to_string(),
                    disabled: r.disabled,
                })
                .collect(),
        }
    }

    fn tunnel_summary(&self, t: &IpsecTunnel) -> TunnelSummary {
        let (tunnel_type, gw, ike, ipsec, spis) = match &t.keying {
            Keying::AutoKey {
                ike_gateway,
                crypto,
            } => (
                "auto-key",
                Some(ike_gateway.clone()),
                self.ike_gateways
                    .get(ike_gateway)
                    .map(|g| g.crypto.name.clone()),
                Some(crypto.name.clone()),
                None,
            ),
            Keying::ManualKey(m) => (
                "manual-key",
                None,
                None,
                None,
                Some(format!("{}/{} {}", m.local_spi, m.remote_spi, m.protocol)),
            ),
        };
        TunnelSummary {
            name: t.name.clone(),
            tunnel_type: tunnel_type.to_owned(),
            tunnel_interface: t.tunnel_interface.clone(),
            ike_gateway: gw,
            ike_crypto_profile: ike,
            ipsec_crypto_profile: ipsec,
            spis,
            proxy_ids: t
                .proxy_ids
                .iter()
                .map(|p| ProxyIdSummary {
                    name: p.name.clone(),
                    local: p.local.to_string(),
                    remote: p.remote.to_string(),
                    protocol: p.protocol.to_string(),
                    local_port: p.local_port.to_string(),
                    remote_port: p.remote_port.to_string(),
                })
                .collect(),
            tunnel_monitor: t.monitor.as_ref().map(|m| {
                format!(
                    "{} → {} (profile {})",
                    m.source, m.destination, m.profile.name
                )
            }),
            replay_window: t.replay_window,
        }
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(", ")
    }
}

fn builtin(b: bool) -> &'static str {
    if b { " (built-in)" } else { "" }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.global;
        writeln!(f, "global")?;
        writeln!(f, "  control-socket {}", g.control_socket)?;
        if let Some(l) = &g.log_file {
            writeln!(f, "  log-file {l}")?;
        }
        writeln!(
            f,
            "  cookie-activation-threshold {}, max-half-opened-sa {} ({} per address), nat-keepalive-interval {}",
            g.cookie_activation_threshold,
            g.max_half_opened_sa,
            g.max_half_opened_sa_per_address,
            g.nat_keepalive_interval
        )?;
        if g.allow_key_export {
            writeln!(f, "  allow-key-export (keys may be exported for Wireshark)")?;
        }
        let off: Vec<&str> = [
            (g.esp_packet_ring, "esp-packet-ring"),
            (g.esp_packet_socket, "esp-packet-socket"),
            (g.esp_early_drop, "esp-early-drop"),
        ]
        .into_iter()
        .filter_map(|(on, key)| (!on).then_some(key))
        .collect();
        if !off.is_empty() {
            writeln!(
                f,
                "  raw ESP through the kernel's IP layer: {} off",
                off.join(", ")
            )?;
            if g.esp_packet_ring && !g.esp_early_drop {
                writeln!(
                    f,
                    "  raw ESP over IPv6 received through the raw socket (the packet ring needs \
                     esp-early-drop there)"
                )?;
            }
        }

        writeln!(
            f,
            "\nike-crypto-profile ({})",
            self.ike_crypto_profiles.len()
        )?;
        for p in &self.ike_crypto_profiles {
            writeln!(
                f,
                "  {}{}: encryption {}; authentication {}; dh-group {}; lifetime {}{}",
                p.name,
                builtin(p.builtin),
                list(&p.encryption),
                list(&p.authentication),
                list(&p.dh_group),
                p.lifetime,
                if p.authentication_multiple > 0 {
                    format!("; authentication-multiple {}", p.authentication_multiple)
                } else {
                    String::new()
                }
            )?;
        }

        writeln!(
            f,
            "\nipsec-crypto-profile ({})",
            self.ipsec_crypto_profiles.len()
        )?;
        for p in &self.ipsec_crypto_profiles {
            write!(f, "  {}{}: {}", p.name, builtin(p.builtin), p.protocol)?;
            if !p.encryption.is_empty() {
                write!(f, "; encryption {}", list(&p.encryption))?;
            }
            write!(
                f,
                "; authentication {}; dh-group {}; lifetime {}",
                list(&p.authentication),
                p.dh_group,
                p.lifetime
            )?;
            if let Some(s) = &p.lifesize {
                write!(f, "; lifesize {s}")?;
            }
            writeln!(f)?;
        }

        writeln!(f, "\nike-gateway ({})", self.ike_gateways.len())?;
        for gw in &self.ike_gateways {
            let mut flags: Vec<String> = Vec::new();
            if gw.nat_traversal {
                flags.push("nat-traversal".into());
            }
            if gw.passive_mode {
                flags.push("passive".into());
            }
            if gw.fragmentation {
                flags.push("fragmentation".into());
            }
            if gw.tcp_encapsulation != "no" {
                flags.push(format!(
                    "tcp-encapsulation {} (port {})",
                    gw.tcp_encapsulation, gw.tcp_port
                ));
            }
            writeln!(
                f,
                "  {}: {} {} → {}; auth {}; profile {}{}",
                gw.name,
                gw.version,
                gw.local,
                gw.peer,
                gw.authentication,
                gw.ike_crypto_profile,
                if flags.is_empty() {
                    String::new()
                } else {
                    format!("; {}", flags.join(", "))
                }
            )?;
            if gw.local_id.is_some() || gw.peer_id.is_some() {
                writeln!(
                    f,
                    "    local-id {}, peer-id {}",
                    gw.local_id.as_deref().unwrap_or("(address)"),
                    gw.peer_id
                        .as_deref()
                        .unwrap_or(if gw.authentication == "certificate" {
                            "(the subject of its certificate)"
                        } else {
                            "(address)"
                        })
                )?;
            }
        }

        writeln!(f, "\ntunnel-interface ({})", self.tunnel_interfaces.len())?;
        for t in &self.tunnel_interfaces {
            writeln!(
                f,
                "  {}: zone {}; virtual-router {}; mtu {}; address {}; tunnels {}",
                t.name,
                t.zone,
                t.virtual_router,
                t.mtu,
                list(&t.addresses),
                list(&t.ipsec_tunnels)
            )?;
        }

        writeln!(f, "\nipsec-tunnel ({})", self.ipsec_tunnels.len())?;
        for t in &self.ipsec_tunnels {
            match (&t.ike_gateway, &t.spis) {
                (Some(gw), _) => writeln!(
                    f,
                    "  {}: {} → gateway {} → profile {}; ipsec-crypto-profile {}",
                    t.name,
                    t.tunnel_interface,
                    gw,
                    t.ike_crypto_profile.as_deref().unwrap_or("?"),
                    t.ipsec_crypto_profile.as_deref().unwrap_or("?")
                )?,
                (None, spis) => writeln!(
                    f,
                    "  {}: {} → manual-key SPIs {}",
                    t.name,
                    t.tunnel_interface,
                    spis.as_deref().unwrap_or("?")
                )?,
            }
            if t.proxy_ids.is_empty() {
                writeln!(f, "    proxy-id (none: 0.0.0.0/0 and ::/0 both ways)")?;
            }
            for p in &t.proxy_ids {
                let ports = if p.local_port == "any" && p.remote_port == "any" {
                    String::new()
                } else {
                    format!(" ports {} → {}", p.local_port, p.remote_port)
                };
                writeln!(
                    f,
                    "    proxy-id {}: {} ↔ {} {}{ports}",
                    p.name, p.local, p.remote, p.protocol
                )?;
            }
            if let Some(m) = &t.tunnel_monitor {
                writeln!(f, "    tunnel-monitor {m}")?;
            }
            match t.replay_window {
                Some(w) => writeln!(f, "    anti-replay window {w}")?,
                None => writeln!(f, "    anti-replay off")?,
            }
        }

        if !self.monitor_profiles.is_empty() {
            writeln!(f, "\nmonitor-profile ({})", self.monitor_profiles.len())?;
            for m in &self.monitor_profiles {
                writeln!(
                    f,
                    "  {}{}: interval {}; threshold {}; action {}",
                    m.name,
                    builtin(m.builtin),
                    m.interval,
                    m.threshold,
                    m.action
                )?;
            }
        }

        writeln!(f, "\nvirtual-router ({})", self.virtual_routers.len())?;
        for v in &self.virtual_routers {
            writeln!(f, "  {}: {} static routes", v.name, v.static_routes.len())?;
            for r in &v.static_routes {
                writeln!(
                    f,
                    "    {}: {} via {}{} metric {}",
                    r.name,
                    r.destination,
                    r.interface,
                    r.next_hop
                        .as_ref()
                        .map_or(String::new(), |n| format!(" next-hop {n}")),
                    r.metric
                )?;
            }
        }

        writeln!(f, "\nzone ({})", self.zones.len())?;
        for z in &self.zones {
            writeln!(f, "  {}: {}", z.name, list(&z.interfaces))?;
        }

        writeln!(f, "\nsecurity-rule ({})", self.security_rules.len())?;
        for (i, r) in self.security_rules.iter().enumerate() {
            writeln!(
                f,
                "  {}. {}{}: {} → {}; {} → {}; service {}; {}",
                i + 1,
                r.name,
                if r.disabled { " (disabled)" } else { "" },
                list(&r.from),
                list(&r.to),
                list(&r.source),
                list(&r.destination),
                list(&r.service),
                r.action
            )?;
        }
        Ok(())
    }
}
