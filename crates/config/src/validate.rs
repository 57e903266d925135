//! From the raw file to a [`Config`]: every value parsed, every reference resolved, every rule
//! checked. All problems are collected; a `Config` is returned only when there are none.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use crate::algo::{
    AdditionalKeyExchange, AddressFamily, DhGroup, EspEncryption, ExchangeMode, HashAlgorithm,
    IdType, IkeEncryption, IkeVersion, IpsecAuthentication, IpsecProtocol, MonitorAction,
    RuleAction, TcpEncapsulation, TunnelType,
};
use crate::credentials;
use crate::error::{Diagnostic, Position, Warning};
use crate::model::*;
use crate::presets;
use crate::raw::*;
use crate::secret::Secret;
use crate::value::{self, AddressSpec, PortRange, Protocol, Service, Spi};

/// Defaults, shared with the configuration reference.
pub(crate) mod defaults {
    /// `[global] control-socket`.
    pub(crate) const CONTROL_SOCKET: &str = "/run/ferrosec/ferrosec.sock";
    /// `[global] cookie-activation-threshold` (PAN-OS default).
    pub(crate) const COOKIE_THRESHOLD: u32 = 500;
    /// `[global] max-half-opened-sa` (PAN-OS default).
    pub(crate) const MAX_HALF_OPEN: u32 = 65535;
    /// `[global] max-half-opened-sa-per-address` (strongSwan's `block_threshold`).
    pub(crate) const MAX_HALF_OPEN_PER_ADDRESS: u32 = 5;
    /// `[global] nat-keepalive-interval` (strongSwan default).
    pub(crate) const NAT_KEEPALIVE_SECS: u64 = 20;
    pub(crate) const FQDN_REFRESH_SECS: u64 = 300;
    /// IKE lifetime (PAN-OS default, R-CFG-1).
    pub(crate) const IKE_LIFETIME_SECS: u64 = 8 * 3600;
    /// IPSec lifetime (PAN-OS default, R-CFG-2).
    pub(crate) const IPSEC_LIFETIME_SECS: u64 = 3600;
    /// Shortest lifetime accepted (PAN-OS minimum: 3 minutes).
    pub(crate) const MIN_LIFETIME_SECS: u64 = 180;
    /// Longest lifetime accepted (365 days).
    pub(crate) const MAX_LIFETIME_SECS: u64 = 365 * 86_400;
    /// IKEv2 liveness interval (PAN-OS default, R-CFG-4).
    pub(crate) const LIVENESS_SECS: u64 = 5;
    /// TCP port of TCP encapsulation (RFC 9329 leaves the port to configuration; 4500 as UDP).
    pub(crate) const TCP_PORT: u16 = 4500;
    /// IKEv1 DPD interval and retries (PAN-OS defaults).
    pub(crate) const DPD_INTERVAL_SECS: u64 = 5;
    /// IKEv1 DPD retries.
    pub(crate) const DPD_RETRY: u32 = 5;
    /// Tunnel interface MTU: room for ESP in UDP over IPv6 on a 1500-byte path.
    pub(crate) const MTU: u16 = 1400;
    /// Anti-replay window (PAN-OS default).
    pub(crate) const REPLAY_WINDOW: u32 = 1024;
    /// Static route metric (PAN-OS default).
    pub(crate) const ROUTE_METRIC: u32 = 10;
    /// Most proxy IDs on one tunnel interface (seed: PAN-OS).
    pub(crate) const MAX_PROXY_IDS: usize = 250;
    /// Shortest pre-shared key (seed: Junos).
    pub(crate) const MIN_PSK_LEN: usize = 8;
}

#[path = "validate_cp.rs"]
mod config_payload;
#[path = "validate_gateway.rs"]
mod gateway;
#[path = "validate_network.rs"]
mod network;
#[path = "validate_profiles.rs"]
mod profiles;
#[path = "validate_tunnel.rs"]
mod tunnel;

use gateway::*;
use network::*;
use profiles::*;
use tunnel::*;

/// The loader's working state: the text for positions, and what was found.
pub(crate) struct Ctx<'a> {
    origin: &'a str,
    text: &'a str,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Warning>,
    /// Every table header of the text (whitespace and comment removed) and where its first
    /// occurrence starts: made in one pass when the first object is looked up, so that a file
    /// with 10,000 gateways is not scanned once per object.
    headers: std::cell::OnceCell<std::collections::HashMap<String, Position>>,
    /// Where certificate files are read from, and the clock; `None` = read no files.
    pub(crate) files: Option<crate::Files>,
}

/// The object being checked, for messages.
#[derive(Clone)]
struct Obj {
    kind: &'static str,
    name: Option<String>,
    pos: Option<Position>,
}

type Span = Option<Range<usize>>;

fn sp<T>(s: &Sp<T>) -> Span {
    Some(s.span())
}

fn quoted(names: impl IntoIterator<Item = impl Display>) -> String {
    names
        .into_iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(origin: &'a str, text: &'a str) -> Ctx<'a> {
        Ctx {
            origin,
            text,
            errors: Vec::new(),
            warnings: Vec::new(),
            headers: std::cell::OnceCell::new(),
            files: None,
        }
    }

    fn obj(&self, kind: &'static str, name: &str) -> Obj {
        Obj {
            kind,
            name: Some(name.to_owned()),
            pos: self.header(kind, name),
        }
    }

    /// The position of the `[kind.name]` header (or `[kind."name"]`) in the text.
    fn header(&self, kind: &str, name: &str) -> Option<Position> {
        let wanted = [
            format!("[{kind}.{name}]"),
            format!("[{kind}.\"{name}\"]"),
            format!("[{kind}.'{name}']"),
        ];
        let headers = self.headers.get_or_init(|| {
            let mut m = std::collections::HashMap::new();
            for (n, line) in self.text.split_inclusive('\n').enumerate() {
                let t = line.trim_start();
                if !t.starts_with('[') {
                    continue;
                }
                let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
                let compact = compact.split('#').next().unwrap_or("").to_owned();
                let indent = line.chars().count() - t.chars().count();
                m.entry(compact).or_insert(Position {
                    line: n + 1,
                    column: indent + 1,
                });
            }
            m
        });
        wanted
            .iter()
            .filter_map(|w| headers.get(w.as_str()).copied())
            .min_by_key(|p| (p.line, p.column))
    }

    fn diag(
        &self,
        obj: &Obj,
        field: Option<&str>,
        span: Span,
        msg: String,
        fix: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            origin: self.origin.to_owned(),
            position: span
                .map(|s| Position::of_offset(self.text, s.start))
                .or(obj.pos),
            kind: obj.kind.to_owned(),
            name: obj.name.clone(),
            field: field.map(str::to_owned),
            message: msg,
            fix,
        }
    }

    fn error(
        &mut self,
        obj: &Obj,
        field: &str,
        span: Span,
        msg: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let d = self.diag(obj, Some(field), span, msg.into(), Some(fix.into()));
        self.errors.push(d);
    }

    fn warn(
        &mut self,
        obj: &Obj,
        field: &str,
        span: Span,
        msg: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let d = self.diag(obj, Some(field), span, msg.into(), Some(fix.into()));
        self.warnings.push(d);
    }

    /// A required key: reports it missing.
    fn required<'v, T>(
        &mut self,
        obj: &Obj,
        field: &str,
        v: &'v Option<Sp<T>>,
        fix: &str,
    ) -> Option<&'v Sp<T>> {
        if v.is_none() {
            self.error(obj, field, None, "is required but missing", fix);
        }
        v.as_ref()
    }

    /// Parse a spanned text with `f`; an error is reported against the field.
    fn parse<T, E: Display>(
        &mut self,
        obj: &Obj,
        field: &str,
        v: &Sp<String>,
        fix: &str,
        f: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match f(v.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(obj, field, sp(v), e.to_string(), fix);
                None
            }
        }
    }

    fn keyword<T: FromStr<Err = crate::algo::UnknownKeyword>>(
        &mut self,
        obj: &Obj,
        field: &str,
        v: &Sp<String>,
    ) -> Option<T> {
        match v.get_ref().parse::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(
                    obj,
                    field,
                    sp(v),
                    format!("unknown value \"{}\"", e.given),
                    format!("use one of: {}", e.allowed.join(", ")),
                );
                None
            }
        }
    }

    fn keyword_list<T: FromStr<Err = crate::algo::UnknownKeyword> + PartialEq + Display>(
        &mut self,
        obj: &Obj,
        field: &str,
        v: &Sp<StrList>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let mut ok = true;
        for s in &v.get_ref().0 {
            match s.parse::<T>() {
                Ok(t) if out.contains(&t) => {
                    self.error(
                        obj,
                        field,
                        sp(v),
                        format!("\"{t}\" is listed twice"),
                        "list each value once",
                    );
                    ok = false;
                }
                Ok(t) => out.push(t),
                Err(e) => {
                    self.error(
                        obj,
                        field,
                        sp(v),
                        format!("unknown value \"{}\"", e.given),
                        format!("use one of: {}", e.allowed.join(", ")),
                    );
                    ok = false;
                }
            }
        }
        if v.get_ref().0.is_empty() {
            self.error(
                obj,
                field,
                sp(v),
                "the list is empty",
                "give at least one value",
            );
            ok = false;
        }
        ok.then_some(out)
    }

    fn duration(
        &mut self,
        obj: &Obj,
        field: &str,
        v: &Option<Sp<StrOrInt>>,
        default: Duration,
        range: (u64, u64),
    ) -> Option<Duration> {
        let Some(v) = v else { return Some(default) };
        let d = match v.get_ref() {
            StrOrInt::Str(s) => value::parse_duration(s),
            StrOrInt::Int(i) => u64::try_from(*i)
                .map(Duration::from_secs)
                .map_err(|_| value::ValueError(format!("{i} is negative"))),
        };
        match d {
            Ok(d) if d.as_secs() < range.0 || d.as_secs() > range.1 => {
                self.error(
                    obj,
                    field,
                    sp(v),
                    format!("{} is out of range", value::format_duration(d)),
                    format!(
                        "use a duration from {} to {}",
                        value::format_duration(Duration::from_secs(range.0)),
                        value::format_duration(Duration::from_secs(range.1))
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    obj,
                    field,
                    sp(v),
                    e.0,
                    "write a duration like \"30s\", \"5m\", \"8h\" or \"1d\"",
                );
                None
            }
        }
    }

    fn int(
        &mut self,
        obj: &Obj,
        field: &str,
        v: &Option<Sp<i64>>,
        default: i64,
        range: (i64, i64),
    ) -> Option<i64> {
        let Some(v) = v else { return Some(default) };
        let n = *v.get_ref();
        if n < range.0 || n > range.1 {
            self.error(
                obj,
                field,
                sp(v),
                format!("{n} is out of range"),
                format!("use a whole number from {} to {}", range.0, range.1),
            );
            return None;
        }
        Some(n)
    }

    fn flag(v: &Option<Sp<bool>>, default: bool) -> bool {
        v.as_ref().map_or(default, |b| *b.get_ref())
    }

    fn check_name(&mut self, kind: &'static str, name: &str, span: Span) {
        let ok = !name.is_empty()
            && name.chars().count() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._- ".contains(c))
            && !name.starts_with(' ')
            && !name.ends_with(' ');
        if !ok {
            let obj = Obj {
                kind,
                name: Some(name.to_owned()),
                pos: self.header(kind, name),
            };
            self.error(
                &obj,
                "name",
                span,
                "is not a valid name",
                "use 1 to 63 characters: letters, digits, '.', '_', '-' and inner spaces",
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The validation proper.
pub(crate) fn validate(raw: RawRoot, ctx: &mut Ctx<'_>) -> Option<Config> {
    let global = global(raw.global.as_ref(), ctx);

    // Profiles defined in the file.
    let mut ike_profiles = BTreeMap::new();
    for (name, p) in raw.ike_crypto_profile.iter().flatten() {
        ctx.check_name("ike-crypto-profile", name, None);
        let obj = ctx.obj("ike-crypto-profile", name);
        if presets::is_reserved_suite(name) {
            ctx.error(&obj, "name", None, format!("\"{name}\" is the name of a built-in preset and cannot be redefined"), format!("use the preset as it is (ike-crypto-profile = \"{name}\") or rename this profile"));
            continue;
        }
        if let Some(p) = ike_profile(name, p, &obj, ctx) {
            weak_ike(&p, &obj, None, ctx);
            ike_profiles.insert(name.clone(), p);
        }
    }
    let mut ipsec_profiles = BTreeMap::new();
    for (name, p) in raw.ipsec_crypto_profile.iter().flatten() {
        ctx.check_name("ipsec-crypto-profile", name, None);
        let obj = ctx.obj("ipsec-crypto-profile", name);
        if presets::is_reserved_suite(name) {
            ctx.error(&obj, "name", None, format!("\"{name}\" is the name of a built-in preset and cannot be redefined"), format!("use the preset as it is (ipsec-crypto-profile = \"{name}\") or rename this profile"));
            continue;
        }
        if let Some(p) = ipsec_profile(name, p, &obj, ctx) {
            weak_ipsec(&p, &obj, None, ctx);
            ipsec_profiles.insert(name.clone(), p);
        }
    }
    let mut monitor_profiles = BTreeMap::new();
    for (name, p) in raw.monitor_profile.iter().flatten() {
        ctx.check_name("monitor-profile", name, None);
        let obj = ctx.obj("monitor-profile", name);
        if let Some(p) = monitor_profile(name, p, &obj, ctx) {
            monitor_profiles.insert(name.clone(), p);
        }
    }

    // Zones: membership as listed.
    let raw_zones: BTreeMap<String, Vec<(String, Span)>> = raw
        .zone
        .iter()
        .flatten()
        .map(|(name, z)| {
            let members = z
                .interfaces
                .as_ref()
                .map(|l| l.get_ref().0.iter().map(|i| (i.clone(), sp(l))).collect())
                .unwrap_or_default();
            (name.clone(), members)
        })
        .collect();
    for name in raw_zones.keys() {
        ctx.check_name("zone", name, None);
    }
    let vr_names: BTreeSet<String> = raw
        .virtual_router
        .iter()
        .flatten()
        .map(|(n, _)| n.clone())
        .collect();

    // Tunnel interfaces.
    let mut tunnel_interfaces = BTreeMap::new();
    for (name, t) in raw.tunnel_interface.iter().flatten() {
        let obj = ctx.obj("tunnel-interface", name);
        if let Some(ti) = tunnel_interface(name, t, &obj, &raw_zones, &vr_names, ctx) {
            tunnel_interfaces.insert(name.clone(), ti);
        }
    }

    // Zones: final membership; every tunnel interface in exactly one zone.
    let mut zones: BTreeMap<String, Zone> = BTreeMap::new();
    let mut member_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (zname, members) in &raw_zones {
        let obj = ctx.obj("zone", zname);
        let mut list: Vec<String> = Vec::new();
        for (iface, span) in members {
            if list.contains(iface) {
                ctx.error(
                    &obj,
                    "interfaces",
                    span.clone(),
                    format!("interface \"{iface}\" is listed twice"),
                    "list each interface once",
                );
                continue;
            }
            if iface.starts_with("tunnel.")
                && !raw
                    .tunnel_interface
                    .as_ref()
                    .is_some_and(|m| m.contains_key(iface))
            {
                ctx.error(
                    &obj,
                    "interfaces",
                    span.clone(),
                    format!("refers to tunnel-interface \"{iface}\", which is not defined"),
                    format!("define [tunnel-interface.\"{iface}\"] or remove it from the list"),
                );
                continue;
            }
            if !iface.starts_with("tunnel.") {
                check_ifname(&obj, "interfaces", span.clone(), iface, ctx);
            }
            list.push(iface.clone());
            member_of
                .entry(iface.clone())
                .or_default()
                .push(zname.clone());
        }
        zones.insert(
            zname.clone(),
            Zone {
                name: zname.clone(),
                interfaces: list,
            },
        );
    }
    for (tname, t) in raw.tunnel_interface.iter().flatten() {
        let obj = ctx.obj("tunnel-interface", tname);
        let listed = member_of.get(tname).cloned().unwrap_or_default();
        let declared = t.zone.as_ref().map(|z| z.get_ref().clone());
        let mut all: Vec<String> = listed.clone();
        if let Some(z) = &declared
            && !all.contains(z)
        {
            all.push(z.clone());
        }
        let span = t.zone.as_ref().and_then(sp);
        match all.len() {
            0 => ctx.error(
                &obj,
                "zone",
                span,
                "the tunnel interface is in no zone; security rules could never match its traffic",
                format!("set zone = \"NAME\" here or list \"{tname}\" in a [zone.NAME] interfaces"),
            ),
            1 => {
                if let (Some(z), Some(ti)) = (all.first(), tunnel_interfaces.get_mut(tname)) {
                    ti.zone = z.clone();
                    if let Some(zone) = zones.get_mut(z)
                        && !zone.interfaces.contains(tname)
                    {
                        zone.interfaces.push(tname.clone());
                    }
                }
            }
            _ => ctx.error(
                &obj,
                "zone",
                span,
                format!(
                    "the tunnel interface is in more than one zone: {}",
                    quoted(&all)
                ),
                "keep it in one zone: make zone = … and the zones' interfaces lists agree",
            ),
        }
    }
    for (iface, zs) in &member_of {
        if !iface.starts_with("tunnel.") && zs.len() > 1 {
            let obj = ctx.obj("zone", &zs[1]);
            ctx.error(&obj, "interfaces", None, format!("interface \"{iface}\" is also in zone \"{}\"; an interface belongs to one zone", zs[0]), "remove it from all zones but one");
        }
    }

    // IKE gateways.
    let mut used_ike_presets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut gateways = BTreeMap::new();
    for (name, g) in raw.ike_gateway.iter().flatten() {
        ctx.check_name("ike-gateway", name, None);
        let obj = ctx.obj("ike-gateway", name);
        if let Some(gw) = gateway(name, g, &obj, &ike_profiles, ctx) {
            if gw.crypto.builtin {
                used_ike_presets
                    .entry(gw.crypto.name.clone())
                    .or_default()
                    .push(name.clone());
            }
            gateways.insert(name.clone(), gw);
        }
    }
    for (pname, users) in &used_ike_presets {
        if let Some(p) = presets::ike_preset(pname) {
            let obj = Obj {
                kind: "ike-crypto-profile",
                name: Some(pname.clone()),
                pos: None,
            };
            weak_ike(&p, &obj, Some(users), ctx);
            ike_profiles.insert(pname.clone(), p);
        }
    }

    // IPSec tunnels.
    let mut used_ipsec_presets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut tunnels = BTreeMap::new();
    let known_gateways: BTreeSet<&String> =
        raw.ike_gateway.iter().flatten().map(|(n, _)| n).collect();
    for (name, t) in raw.ipsec_tunnel.iter().flatten() {
        ctx.check_name("ipsec-tunnel", name, None);
        let obj = ctx.obj("ipsec-tunnel", name);
        let env = TunnelEnv {
            gateways: &gateways,
            known_gateways: &known_gateways,
            ipsec_profiles: &ipsec_profiles,
            monitor_profiles: &monitor_profiles,
            tunnel_interfaces: &tunnel_interfaces,
            raw_tunnel_interfaces: raw.tunnel_interface.as_ref(),
        };
        if let Some(tun) = ipsec_tunnel(name, t, &obj, &env, ctx) {
            if let Keying::AutoKey { crypto, .. } = &tun.keying
                && crypto.builtin
            {
                used_ipsec_presets
                    .entry(crypto.name.clone())
                    .or_default()
                    .push(name.clone());
            }
            if let Some(m) = &tun.monitor
                && m.profile.builtin
            {
                monitor_profiles.insert(m.profile.name.clone(), m.profile.clone());
            }
            tunnels.insert(name.clone(), tun);
        }
    }
    for (pname, users) in &used_ipsec_presets {
        if let Some(p) = presets::ipsec_preset(pname) {
            let obj = Obj {
                kind: "ipsec-crypto-profile",
                name: Some(pname.clone()),
                pos: None,
            };
            weak_ipsec(&p, &obj, Some(users), ctx);
            ipsec_profiles.insert(pname.clone(), p);
        }
    }
    cross_tunnel_rules(&tunnels, &gateways, raw.ipsec_tunnel.as_ref(), ctx);
    let used: BTreeSet<&str> = tunnels
        .values()
        .filter_map(|t| match &t.keying {
            Keying::AutoKey { ike_gateway, .. } => Some(ike_gateway.as_str()),
            _ => None,
        })
        .collect();
    for (gname, _) in gateways.iter() {
        if !used.contains(gname.as_str()) {
            let obj = ctx.obj("ike-gateway", gname);
            ctx.warn(&obj, "name", None, "no ipsec-tunnel uses this gateway, so it never negotiates", format!("add an [ipsec-tunnel.NAME] with ike-gateway = \"{gname}\" or remove the gateway"));
        }
    }

    // Virtual routers and routes.
    let mut physical: BTreeSet<String> = member_of
        .keys()
        .filter(|i| !i.starts_with("tunnel."))
        .cloned()
        .collect();
    physical.extend(gateways.values().filter_map(|g| g.interface.clone()));
    let mut virtual_routers = BTreeMap::new();
    let mut claimed = BTreeMap::new();
    let mut tables = BTreeMap::new();
    // `default` first: its table (main) is taken before any other router's is checked.
    let mut raw_vrs: Vec<_> = raw.virtual_router.iter().flatten().collect();
    raw_vrs.sort_by_key(|(n, _)| n.as_str() != "default");
    if !raw_vrs.iter().any(|(n, _)| n.as_str() == "default") {
        tables.insert(MAIN_TABLE, "default".to_owned());
    }
    let mut memberships = BTreeMap::new();
    for (name, vr) in &raw_vrs {
        let obj = ctx.obj("virtual-router", name);
        let m = vr_membership(
            name,
            vr,
            &obj,
            &tunnel_interfaces,
            &mut claimed,
            &mut tables,
            ctx,
        );
        physical.extend(m.0.iter().cloned());
        memberships.insert(name.to_string(), m);
    }
    for (name, vr) in raw.virtual_router.iter().flatten() {
        ctx.check_name("virtual-router", name, None);
        let obj = ctx.obj("virtual-router", name);
        let routes = static_routes(
            name,
            vr,
            &obj,
            &tunnel_interfaces,
            raw.tunnel_interface.as_ref(),
            &physical,
            ctx,
        );
        let (interfaces, routing_table) = memberships.remove(name).unwrap_or_default();
        virtual_routers.insert(
            name.clone(),
            VirtualRouter {
                name: name.clone(),
                interfaces,
                routing_table,
                static_routes: routes,
            },
        );
    }
    virtual_routers
        .entry("default".to_owned())
        .or_insert_with(|| VirtualRouter {
            name: "default".to_owned(),
            interfaces: Vec::new(),
            routing_table: MAIN_TABLE,
            static_routes: Vec::new(),
        });
    vr_route_members(&virtual_routers, &claimed, raw.virtual_router.as_ref(), ctx);
    failover_backups(&tunnels, &virtual_routers, ctx);
    config_payload::cross_cp(
        &mut gateways,
        &tunnels,
        &tunnel_interfaces,
        &mut virtual_routers,
        &raw,
        ctx,
    );

    // Security rules.
    let mut rules = Vec::new();
    let mut rule_names: BTreeMap<String, Span> = BTreeMap::new();
    for r in raw.security_rule.iter().flatten() {
        if let Some(rule) = security_rule(r, &zones, &mut rule_names, ctx) {
            rules.push(rule);
        }
    }

    if !ctx.errors.is_empty() {
        return None;
    }
    Some(Config {
        global: global?,
        ike_crypto_profiles: ike_profiles,
        ipsec_crypto_profiles: ipsec_profiles,
        ike_gateways: gateways,
        tunnel_interfaces,
        ipsec_tunnels: tunnels,
        monitor_profiles,
        virtual_routers,
        zones,
        security_rules: rules,
    })
}

fn global(g: Option<&RawGlobal>, ctx: &mut Ctx<'_>) -> Option<Global> {
    let obj = Obj {
        kind: "global",
        name: None,
        pos: ctx.header_global(),
    };
    let Some(g) = g else {
        return Some(Global {
            control_socket: PathBuf::from(defaults::CONTROL_SOCKET),
            log_file: None,
            cookie_activation_threshold: defaults::COOKIE_THRESHOLD,
            max_half_opened_sa: defaults::MAX_HALF_OPEN,
            max_half_opened_sa_per_address: defaults::MAX_HALF_OPEN_PER_ADDRESS,
            nat_keepalive_interval: Duration::from_secs(defaults::NAT_KEEPALIVE_SECS),
            fqdn_refresh: Duration::from_secs(defaults::FQDN_REFRESH_SECS),
            metrics_listen: None,
            allow_key_export: false,
            raw_esp: RawEspPaths::default(),
        });
    };
    let control_socket = g.control_socket.as_ref().map_or_else(
        || PathBuf::from(defaults::CONTROL_SOCKET),
        |s| PathBuf::from(s.get_ref()),
    );
    if let Some(s) = &g.control_socket
        && s.get_ref().is_empty()
    {
        ctx.error(
            &obj,
            "control-socket",
            sp(s),
            "is empty",
            "give a path like \"/run/ferrosec/ferrosec.sock\"",
        );
    }
    let log_file = g.log_file.as_ref().map(|s| PathBuf::from(s.get_ref()));
    let threshold = ctx.int(
        &obj,
        "cookie-activation-threshold",
        &g.cookie_activation_threshold,
        i64::from(defaults::COOKIE_THRESHOLD),
        (0, 65535),
    );
    let max = ctx.int(
        &obj,
        "max-half-opened-sa",
        &g.max_half_opened_sa,
        i64::from(defaults::MAX_HALF_OPEN),
        (1, 65535),
    );
    let per_address = ctx.int(
        &obj,
        "max-half-opened-sa-per-address",
        &g.max_half_opened_sa_per_address,
        i64::from(defaults::MAX_HALF_OPEN_PER_ADDRESS),
        (0, 65535),
    );
    let keepalive = ctx.duration(
        &obj,
        "nat-keepalive-interval",
        &g.nat_keepalive_interval,
        Duration::from_secs(defaults::NAT_KEEPALIVE_SECS),
        (1, 3600),
    );
    let fqdn_refresh = ctx.duration(
        &obj,
        "fqdn-refresh",
        &g.fqdn_refresh,
        Duration::from_secs(defaults::FQDN_REFRESH_SECS),
        (1, 86400),
    );
    let mut metrics_listen = None;
    if let Some(s) = &g.metrics_listen {
        match s.get_ref().parse::<std::net::SocketAddr>() {
            Ok(a) if a.port() != 0 => metrics_listen = Some(a),
            _ => ctx.error(
                &obj,
                "metrics-listen",
                sp(s),
                format!("\"{}\" is not an address and port", s.get_ref()),
                "give an address and a port, like \"127.0.0.1:9750\" or \"[::1]:9750\"; leave the key out to serve no metrics",
            ),
        }
    }
    if let (Some(t), Some(m)) = (threshold, max)
        && t >= m
    {
        let span = g.cookie_activation_threshold.as_ref().and_then(sp);
        ctx.error(
            &obj,
            "cookie-activation-threshold",
            span,
            format!("{t} is not lower than max-half-opened-sa ({m})"),
            format!("set cookie-activation-threshold below {m}, or raise max-half-opened-sa"),
        );
    }
    let raw_esp = RawEspPaths {
        packet_ring: Ctx::flag(&g.esp_packet_ring, true),
        packet_socket: Ctx::flag(&g.esp_packet_socket, true),
        early_drop: Ctx::flag(&g.esp_early_drop, true),
    };
    if let (Some(drop), Some(ring)) = (&g.esp_early_drop, &g.esp_packet_ring)
        && *drop.get_ref()
        && !*ring.get_ref()
    {
        ctx.error(
            &obj,
            "esp-early-drop",
            sp(drop),
            "is true but esp-packet-ring is false: the table drops only ESP the packet ring has read, and there is no ring",
            "leave esp-early-drop out (or false), or set esp-packet-ring = true",
        );
    }
    Some(Global {
        control_socket,
        log_file,
        cookie_activation_threshold: u32::try_from(threshold?).ok()?,
        max_half_opened_sa: u32::try_from(max?).ok()?,
        max_half_opened_sa_per_address: u32::try_from(per_address?).ok()?,
        nat_keepalive_interval: keepalive?,
        fqdn_refresh: fqdn_refresh?,
        metrics_listen,
        allow_key_export: Ctx::flag(&g.allow_key_export, false),
        raw_esp: RawEspPaths {
            early_drop: raw_esp.early_drop && raw_esp.packet_ring,
            ..raw_esp
        },
    })
}

impl Ctx<'_> {
    fn header_global(&self) -> Option<Position> {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.split('#').next() == Some("[global]") {
                return Some(Position::of_offset(self.text, offset));
            }
            offset += line.len();
        }
        None
    }
}
