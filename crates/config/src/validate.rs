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
        virtual_routers.insert(
            name.clone(),
            VirtualRouter {
                name: name.clone(),
                static_routes: routes,
            },
        );
    }
    virtual_routers
        .entry("default".to_owned())
        .or_insert_with(|| VirtualRouter {
            name: "default".to_owned(),
            static_routes: Vec::new(),
        });
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

fn ike_profile(
    name: &str,
    p: &RawIkeProfile,
    obj: &Obj,
    ctx: &mut Ctx<'_>,
) -> Option<IkeCryptoProfile> {
    let dh = match &p.dh_group {
        Some(v) => ctx.keyword_list::<DhGroup>(obj, "dh-group", v),
        None => Some(vec![DhGroup::Group19, DhGroup::Group14]),
    };
    let auth = match &p.authentication {
        Some(v) => ctx.keyword_list::<HashAlgorithm>(obj, "authentication", v),
        None => Some(vec![HashAlgorithm::Sha256]),
    };
    let enc = match &p.encryption {
        Some(v) => ctx.keyword_list::<IkeEncryption>(obj, "encryption", v),
        None => Some(vec![IkeEncryption::Aes256Cbc, IkeEncryption::Aes128Cbc]),
    };
    let lifetime = ctx.duration(
        obj,
        "lifetime",
        &p.lifetime,
        Duration::from_secs(defaults::IKE_LIFETIME_SECS),
        (defaults::MIN_LIFETIME_SECS, defaults::MAX_LIFETIME_SECS),
    );
    let multiple = ctx.int(
        obj,
        "authentication-multiple",
        &p.authentication_multiple,
        0,
        (0, 50),
    );
    let addke = match &p.additional_key_exchange {
        Some(v) => ctx.keyword_list::<AdditionalKeyExchange>(obj, "additional-key-exchange", v),
        None => Some(Vec::new()),
    };
    Some(IkeCryptoProfile {
        name: name.to_owned(),
        builtin: false,
        dh_groups: dh?,
        authentication: auth?,
        encryption: enc?,
        lifetime: lifetime?,
        authentication_multiple: u8::try_from(multiple?).ok()?,
        additional_key_exchange: addke?,
    })
}

fn ipsec_profile(
    name: &str,
    p: &RawIpsecProfile,
    obj: &Obj,
    ctx: &mut Ctx<'_>,
) -> Option<IpsecCryptoProfile> {
    let protocol = match &p.protocol {
        Some(v) => ctx.keyword::<IpsecProtocol>(obj, "protocol", v)?,
        None => IpsecProtocol::Esp,
    };
    let mut ok = true;
    let (encryption, authentication) = match protocol {
        IpsecProtocol::Esp => {
            let enc = match &p.encryption {
                Some(v) => ctx.keyword_list::<EspEncryption>(obj, "encryption", v),
                None => Some(vec![EspEncryption::Aes256Gcm, EspEncryption::Aes256Cbc]),
            };
            let auth = match &p.authentication {
                Some(v) => ctx.keyword_list::<IpsecAuthentication>(obj, "authentication", v),
                None => Some(vec![IpsecAuthentication::Sha256]),
            };
            if let (Some(enc), Some(auth)) = (&enc, &auth) {
                let has_hash = auth.iter().any(|a| a.hash().is_some());
                let span = p.authentication.as_ref().and_then(sp);
                for e in enc.iter().filter(|e| !e.is_aead()) {
                    if !has_hash {
                        ok = false;
                        let what = if *e == EspEncryption::Null {
                            "null encryption with authentication none would leave traffic neither encrypted nor authenticated".to_owned()
                        } else {
                            format!(
                                "authentication none is allowed only with an AEAD cipher (aes-128-gcm, aes-256-gcm, aes-128-ccm), but encryption includes {e}"
                            )
                        };
                        ctx.error(obj, "authentication", span.clone(), what, format!("add a hash (e.g. authentication = [\"sha256\"]) or use only GCM/CCM ciphers instead of {e}"));
                    }
                }
                if enc.contains(&EspEncryption::Null) {
                    ctx.warn(
                        obj,
                        "encryption",
                        p.encryption.as_ref().and_then(sp),
                        "null encryption: traffic is authenticated but sent in the clear",
                        "use aes-256-gcm unless confidentiality is not wanted",
                    );
                }
            }
            (enc, auth)
        }
        IpsecProtocol::Ah => {
            if let Some(e) = &p.encryption {
                ok = false;
                ctx.error(
                    obj,
                    "encryption",
                    sp(e),
                    "AH does not encrypt; encryption is for ESP only",
                    "remove encryption, or set protocol = \"esp\"",
                );
            }
            let auth = match ctx.required(
                obj,
                "authentication",
                &p.authentication,
                "AH needs an authentication algorithm, e.g. authentication = [\"sha256\"]",
            ) {
                Some(v) => ctx.keyword_list::<IpsecAuthentication>(obj, "authentication", v),
                None => None,
            };
            if let Some(a) = &auth
                && a.contains(&IpsecAuthentication::None)
            {
                ok = false;
                let span = p.authentication.as_ref().and_then(sp);
                ctx.error(
                    obj,
                    "authentication",
                    span,
                    "AH with authentication none would protect nothing",
                    "use a hash such as sha256",
                );
            }
            (Some(Vec::new()), auth)
        }
    };
    if let Some(v) = &p.additional_key_exchange {
        let kinds = ctx.keyword_list::<AdditionalKeyExchange>(obj, "additional-key-exchange", v);
        match kinds {
            None => ok = false,
            Some(k) if k.iter().any(|k| *k != AdditionalKeyExchange::None) => {
                ok = false;
                ctx.error(
                    obj,
                    "additional-key-exchange",
                    sp(v),
                    "additional key exchanges for Child SAs (CREATE_CHILD_SA with IKE_FOLLOWUP_KE, RFC 9370 §2.2.4) are not supported by this version yet",
                    format!("remove additional-key-exchange from ipsec-crypto-profile \"{name}\" and set it on the gateway's ike-crypto-profile: Child SA keys derive from the IKE SA's SK_d, which the ML-KEM exchange protects"),
                );
            }
            Some(_) => {}
        }
    }
    let pfs = match &p.dh_group {
        None => Some(Some(DhGroup::Group14)),
        Some(v) if v.get_ref() == "no-pfs" => Some(None),
        Some(v) => match v.get_ref().parse::<DhGroup>() {
            Ok(g) => Some(Some(g)),
            Err(e) => {
                ctx.error(
                    obj,
                    "dh-group",
                    sp(v),
                    format!("unknown value \"{}\"", e.given),
                    format!("use no-pfs or one of: {}", e.allowed.join(", ")),
                );
                None
            }
        },
    };
    let lifetime = ctx.duration(
        obj,
        "lifetime",
        &p.lifetime,
        Duration::from_secs(defaults::IPSEC_LIFETIME_SECS),
        (defaults::MIN_LIFETIME_SECS, defaults::MAX_LIFETIME_SECS),
    );
    let lifesize = match &p.lifesize {
        None => Some(None),
        Some(v) => match value::parse_size(v.get_ref()) {
            Ok(0) => {
                ctx.error(
                    obj,
                    "lifesize",
                    sp(v),
                    "is zero",
                    "remove lifesize for no byte limit, or give a size like \"50GB\"",
                );
                None
            }
            Ok(n) => Some(Some(n)),
            Err(e) => {
                ctx.error(
                    obj,
                    "lifesize",
                    sp(v),
                    e.0,
                    "write a size like \"512KB\", \"10MB\" or \"50GB\" (1 KB = 1024 bytes)",
                );
                None
            }
        },
    };
    let esn = match p.esn.as_ref().map(|v| (v, v.get_ref())) {
        None => Some(Esn::Either),
        Some((_, BoolOrStr::Bool(true))) => Some(Esn::Required),
        Some((_, BoolOrStr::Bool(false))) => Some(Esn::Off),
        Some((_, BoolOrStr::Str(s))) if s == "either" => Some(Esn::Either),
        Some((v, BoolOrStr::Str(s))) => {
            ctx.error(
                obj,
                "esn",
                sp(v),
                format!("unknown value \"{s}\""),
                "use true (extended sequence numbers required), false (never) or \"either\" (the default)",
            );
            None
        }
    };
    if !ok {
        return None;
    }
    Some(IpsecCryptoProfile {
        name: name.to_owned(),
        builtin: false,
        protocol,
        encryption: encryption?,
        authentication: authentication?,
        pfs: pfs?,
        lifetime: lifetime?,
        lifesize: lifesize?,
        esn: esn?,
    })
}

/// Warnings for weak algorithms (R-CFG-3). `users` is set for a built-in preset in use.
fn weak_ike(p: &IkeCryptoProfile, obj: &Obj, users: Option<&Vec<String>>, ctx: &mut Ctx<'_>) {
    let ctx_note = users.map_or(String::new(), |u| {
        format!(" (built-in preset, used by ike-gateway {})", quoted(u))
    });
    let fix = if users.is_some() {
        "define your own ike-crypto-profile with aes-256-cbc/sha256/group19 or group14 and use it"
            .to_owned()
    } else {
        "prefer aes-256-cbc or aes-256-gcm, sha256 or stronger, group14/19/20".to_owned()
    };
    let weak_groups: Vec<_> = p
        .dh_groups
        .iter()
        .filter(|g| g.is_weak())
        .map(|g| g.name())
        .collect();
    if !weak_groups.is_empty() {
        ctx.warn(
            obj,
            "dh-group",
            None,
            format!(
                "weak Diffie-Hellman group {}{ctx_note}",
                weak_groups.join(", ")
            ),
            fix.clone(),
        );
    }
    let weak_enc: Vec<_> = p
        .encryption
        .iter()
        .filter(|e| e.is_weak())
        .map(|e| e.name())
        .collect();
    if !weak_enc.is_empty() {
        ctx.warn(
            obj,
            "encryption",
            None,
            format!("weak cipher {}{ctx_note}", weak_enc.join(", ")),
            fix.clone(),
        );
    }
    if p.authentication.contains(&HashAlgorithm::Md5) {
        ctx.warn(
            obj,
            "authentication",
            None,
            format!("weak hash md5{ctx_note}"),
            fix,
        );
    }
}

fn weak_ipsec(p: &IpsecCryptoProfile, obj: &Obj, users: Option<&Vec<String>>, ctx: &mut Ctx<'_>) {
    let ctx_note = users.map_or(String::new(), |u| {
        format!(" (built-in preset, used by ipsec-tunnel {})", quoted(u))
    });
    let fix = if users.is_some() {
        "define your own ipsec-crypto-profile with aes-256-gcm and group19 or group14 and use it"
            .to_owned()
    } else {
        "prefer aes-256-gcm, sha256 or stronger, group14/19/20".to_owned()
    };
    if let Some(g) = p.pfs.filter(|g| g.is_weak()) {
        ctx.warn(
            obj,
            "dh-group",
            None,
            format!("weak Diffie-Hellman group {g}{ctx_note}"),
            fix.clone(),
        );
    }
    let weak_enc: Vec<_> = p
        .encryption
        .iter()
        .filter(|e| e.is_weak())
        .map(|e| e.name())
        .collect();
    if !weak_enc.is_empty() {
        ctx.warn(
            obj,
            "encryption",
            None,
            format!("weak cipher {}{ctx_note}", weak_enc.join(", ")),
            fix.clone(),
        );
    }
    if p.authentication.contains(&IpsecAuthentication::Md5) {
        ctx.warn(
            obj,
            "authentication",
            None,
            format!("weak hash md5{ctx_note}"),
            fix,
        );
    }
}

fn monitor_profile(
    name: &str,
    p: &RawMonitorProfile,
    obj: &Obj,
    ctx: &mut Ctx<'_>,
) -> Option<MonitorProfile> {
    let interval = ctx.duration(
        obj,
        "interval",
        &p.interval,
        Duration::from_secs(3),
        (1, 60),
    );
    let threshold = ctx.int(obj, "threshold", &p.threshold, 5, (1, 100));
    let action = match &p.action {
        Some(v) => ctx.keyword::<MonitorAction>(obj, "action", v),
        None => Some(MonitorAction::WaitRecover),
    };
    Some(MonitorProfile {
        name: name.to_owned(),
        builtin: false,
        interval: interval?,
        threshold: u32::try_from(threshold?).ok()?,
        action: action?,
    })
}

/// A Linux interface name: 1-15 bytes, no '/', ':' or whitespace.
fn check_ifname(obj: &Obj, field: &str, span: Span, name: &str, ctx: &mut Ctx<'_>) {
    if name.is_empty()
        || name.len() > 15
        || name.contains(['/', ':'])
        || name.chars().any(char::is_whitespace)
    {
        ctx.error(obj, field, span, format!("\"{name}\" is not a valid interface name"), "use a Linux interface name of 1 to 15 characters without '/', ':' or spaces, e.g. eth0");
    }
}

fn tunnel_interface(
    name: &str,
    t: &RawTunnelInterface,
    obj: &Obj,
    zones: &BTreeMap<String, Vec<(String, Span)>>,
    vrs: &BTreeSet<String>,
    ctx: &mut Ctx<'_>,
) -> Option<TunnelInterface> {
    let unit = name
        .strip_prefix("tunnel.")
        .and_then(|n| n.parse::<u16>().ok())
        .filter(|n| (1..=9999).contains(n) && name == format!("tunnel.{n}"));
    if unit.is_none() {
        ctx.error(
            obj,
            "name",
            None,
            format!("\"{name}\" is not a tunnel interface name"),
            "name it tunnel.N with N from 1 to 9999, e.g. [tunnel-interface.\"tunnel.1\"]",
        );
    }
    let mut ok = true;
    if let Some(z) = &t.zone
        && !zones.contains_key(z.get_ref())
    {
        ok = false;
        ctx.error(
            obj,
            "zone",
            sp(z),
            format!("refers to zone \"{}\", which is not defined", z.get_ref()),
            format!("define [zone.{}] or fix the name", z.get_ref()),
        );
    }
    let virtual_router = t
        .virtual_router
        .as_ref()
        .map_or_else(|| "default".to_owned(), |v| v.get_ref().clone());
    if let Some(v) = &t.virtual_router
        && v.get_ref() != "default"
        && !vrs.contains(v.get_ref())
    {
        ok = false;
        ctx.error(
            obj,
            "virtual-router",
            sp(v),
            format!(
                "refers to virtual-router \"{}\", which is not defined",
                v.get_ref()
            ),
            format!(
                "define [virtual-router.{}] or fix the name (\"default\" always exists)",
                v.get_ref()
            ),
        );
    }
    let mut addresses: Vec<IpNet> = Vec::new();
    if let Some(a) = &t.address {
        for s in &a.get_ref().0 {
            match value::parse_interface_address(s) {
                Ok(net) => {
                    if addresses
                        .iter()
                        .any(|x| x.addr().is_ipv4() == net.addr().is_ipv4())
                    {
                        ok = false;
                        ctx.error(
                            obj,
                            "address",
                            sp(a),
                            "more than one address of the same family",
                            "give at most one IPv4 and one IPv6 address",
                        );
                    }
                    addresses.push(net);
                }
                Err(e) => {
                    ok = false;
                    ctx.error(
                        obj,
                        "address",
                        sp(a),
                        e.0,
                        "write an address with its prefix length, e.g. \"169.254.10.1/30\"",
                    );
                }
            }
        }
    }
    let min_mtu = if addresses.iter().any(|a| a.addr().is_ipv6()) {
        1280
    } else {
        576
    };
    let mtu = ctx.int(
        obj,
        "mtu",
        &t.mtu,
        i64::from(defaults::MTU),
        (min_mtu, 9216),
    );
    let tcp_mss_clamp = mss_clamp(obj, &t.tcp_mss_clamp, ctx);
    if !ok {
        return None;
    }
    Some(TunnelInterface {
        name: name.to_owned(),
        unit: unit?,
        zone: String::new(), // set once zone membership is known
        virtual_router,
        addresses,
        mtu: u16::try_from(mtu?).ok()?,
        tcp_mss_clamp: tcp_mss_clamp?,
    })
}

/// `tcp-mss-clamp`: absent (off), "auto", or an MSS of 536–9176 (R-DP-8).
fn mss_clamp(obj: &Obj, v: &Option<Sp<StrOrInt>>, ctx: &mut Ctx<'_>) -> Option<MssClamp> {
    let fix = "write tcp-mss-clamp = \"auto\" (the interface MTU less 40, IPv6 60) or an MSS \
               of 536-9176, e.g. 1360";
    let Some(v) = v else {
        return Some(MssClamp::Off);
    };
    match v.get_ref() {
        StrOrInt::Str(s) if s == "auto" => Some(MssClamp::Auto),
        StrOrInt::Int(i) if (536..=9176).contains(i) => Some(MssClamp::Fixed(*i as u16)),
        other => {
            ctx.error(
                obj,
                "tcp-mss-clamp",
                sp(v),
                format!(
                    "{} is neither \"auto\" nor an MSS of 536-9176",
                    other.as_text()
                ),
                fix,
            );
            None
        }
    }
}

fn identity(
    obj: &Obj,
    field: &str,
    raw: &Sp<RawId>,
    family: AddressFamily,
    ctx: &mut Ctx<'_>,
) -> Option<Identity> {
    let r = raw.get_ref();
    let fix = "write { type = \"fqdn\", value = \"vpn.example.net\" } (types: ipaddr, fqdn, ufqdn, keyid, dn)";
    let t = match &r.id_type {
        Some(t) => match t.get_ref().parse::<IdType>() {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.error(
                    obj,
                    &format!("{field}.type"),
                    sp(t),
                    format!("unknown value \"{}\"", e.given),
                    format!("use one of: {}", e.allowed.join(", ")),
                );
                None
            }
        },
        None => {
            ctx.error(
                obj,
                &format!("{field}.type"),
                sp(raw),
                "is required but missing",
                fix,
            );
            None
        }
    };
    let v = match &r.value {
        Some(v) => Some(v),
        None => {
            ctx.error(
                obj,
                &format!("{field}.value"),
                sp(raw),
                "is required but missing",
                fix,
            );
            None
        }
    };
    let (t, v) = (t?, v?);
    let s = v.get_ref();
    let problem = match t {
        IdType::Ipaddr => match s.parse::<IpAddr>() {
            Ok(ip) if AddressFamily::of(ip) != family => {
                Some(format!("address {ip} is not {family} like the gateway"))
            }
            Ok(_) => None,
            Err(_) => Some(format!("\"{s}\" is not an IP address")),
        },
        IdType::Fqdn => (!is_hostname(s)).then(|| format!("\"{s}\" is not a domain name")),
        IdType::Ufqdn => match s.split_once('@') {
            Some((user, dom)) if !user.is_empty() && is_hostname(dom) => None,
            _ => Some(format!("\"{s}\" is not user@domain")),
        },
        IdType::Dn => (!s.contains('='))
            .then(|| format!("\"{s}\" is not a distinguished name like \"CN=hq, O=Example\"")),
        IdType::Keyid => s.is_empty().then(|| "the key ID is empty".to_owned()),
    };
    if let Some(p) = problem {
        ctx.error(
            obj,
            &format!("{field}.value"),
            sp(v),
            p,
            format!("give a value of type {t}, or change the type"),
        );
        return None;
    }
    Some(Identity {
        id_type: t,
        value: s.clone(),
        der: None,
    })
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn gateway(
    name: &str,
    g: &RawGateway,
    obj: &Obj,
    profiles: &BTreeMap<String, IkeCryptoProfile>,
    ctx: &mut Ctx<'_>,
) -> Option<IkeGateway> {
    let mut ok = true;
    let version = match &g.version {
        Some(v) => ctx.keyword::<IkeVersion>(obj, "version", v),
        None => Some(IkeVersion::Ikev2),
    };
    let family = match &g.address_family {
        Some(v) => ctx.keyword::<AddressFamily>(obj, "address-family", v),
        None => Some(AddressFamily::Ipv4),
    };
    if let Some(i) = &g.interface {
        check_ifname(obj, "interface", sp(i), i.get_ref(), ctx);
    }
    let local = g.local_address.as_ref().and_then(|v| {
        ctx.parse(
            obj,
            "local-address",
            v,
            "give an IP address of this gateway, e.g. \"198.51.100.1\"",
            value::parse_ip,
        )
    });
    if g.local_address.is_some() && local.is_none() {
        ok = false;
    }
    let peer = match ctx.required(
        obj,
        "peer-address",
        &g.peer_address,
        "set peer-address to the peer's IP address, an FQDN, or \"dynamic\"",
    ) {
        None => None,
        Some(v) => {
            let s = v.get_ref().trim();
            if s == "dynamic" {
                Some(PeerAddress::Dynamic)
            } else if let Ok(ip) = s.parse::<IpAddr>() {
                Some(PeerAddress::Ip(ip))
            } else if is_hostname(s) && s.chars().any(|c| c.is_ascii_alphabetic()) {
                Some(PeerAddress::Fqdn(s.to_owned()))
            } else {
                ctx.error(
                    obj,
                    "peer-address",
                    sp(v),
                    format!("\"{s}\" is not an IP address, a domain name or \"dynamic\""),
                    "give the peer's IP address (e.g. \"198.51.100.2\"), its FQDN, or \"dynamic\"",
                );
                None
            }
        }
    };
    // Address families.
    if let (Some(fam), Some(ip)) = (family, local)
        && AddressFamily::of(ip) != fam
    {
        ok = false;
        ctx.error(
            obj,
            "local-address",
            g.local_address.as_ref().and_then(sp),
            format!("{ip} is not an {fam} address, but address-family is \"{fam}\""),
            format!(
                "use an {fam} address or set address-family = \"{}\"",
                AddressFamily::of(ip)
            ),
        );
    }
    if let (Some(fam), Some(PeerAddress::Ip(ip))) = (family, &peer)
        && AddressFamily::of(*ip) != fam
        && local.is_none_or(|l| AddressFamily::of(l) == fam)
    {
        ok = false;
        ctx.error(
            obj,
            "peer-address",
            g.peer_address.as_ref().and_then(sp),
            format!("{ip} is not an {fam} address, but address-family is \"{fam}\""),
            format!(
                "use an {fam} address or set address-family = \"{}\"",
                AddressFamily::of(*ip)
            ),
        );
    }
    if let (Some(l), Some(PeerAddress::Ip(p))) = (local, &peer)
        && l.is_ipv4() != p.is_ipv4()
    {
        ok = false;
        ctx.error(
            obj,
            "peer-address",
            g.peer_address.as_ref().and_then(sp),
            format!("peer-address {p} and local-address {l} are of different address families"),
            "use an IPv4 pair or an IPv6 pair",
        );
    }

    // Authentication.
    let auth = match (&g.pre_shared_key, &g.certificate) {
        (Some(_), Some(c)) => {
            ctx.error(
                obj,
                "certificate",
                sp(c),
                "both pre-shared-key and certificate are set",
                "keep one: remove pre-shared-key or certificate",
            );
            None
        }
        (None, None) => {
            ctx.error(obj, "pre-shared-key", None, "no authentication: neither pre-shared-key nor certificate is set", "set pre-shared-key = \"…\" (8 characters or more) or certificate = { local = …, key = …, ca = […] }");
            None
        }
        (Some(psk), None) => {
            let text = &psk.get_ref().0;
            let n = text.chars().count();
            if n < defaults::MIN_PSK_LEN {
                ctx.error(obj, "pre-shared-key", sp(psk), format!("the key is {n} characters long; the minimum is {}", defaults::MIN_PSK_LEN), "use a key of at least 8 characters (12 or more recommended) mixing letters, digits and symbols");
                None
            } else {
                Some(GatewayAuth::PreSharedKey(Secret::from_text(text)))
            }
        }
        (None, Some(c)) => certificate(obj, c, version, ctx).map(GatewayAuth::Certificate),
    };

    let mut local_id = g
        .local_id
        .as_ref()
        .and_then(|r| family.and_then(|f| identity(obj, "local-id", r, f, ctx)));
    // With certificates read, the local ID defaults to our certificate's subject DN.
    if let Some(GatewayAuth::Certificate(CertificateAuth {
        credentials: Some(cr),
        ..
    })) = &auth
    {
        match &mut local_id {
            None if g.local_id.is_none() => {
                local_id = Some(Identity {
                    id_type: IdType::Dn,
                    value: cr.subject(),
                    der: Some(cr.subject_der()),
                });
            }
            Some(id) if id.id_type == IdType::Dn && id.value == cr.subject() => {
                id.der = Some(cr.subject_der());
            }
            _ => {}
        }
    }
    let peer_id = g
        .peer_id
        .as_ref()
        .and_then(|r| family.and_then(|f| identity(obj, "peer-id", r, f, ctx)));
    if (g.local_id.is_some() && local_id.is_none()) || (g.peer_id.is_some() && peer_id.is_none()) {
        ok = false;
    }

    // Crypto profile.
    let pname = g
        .ike_crypto_profile
        .as_ref()
        .map_or("default", |p| p.get_ref().as_str());
    let pspan = g.ike_crypto_profile.as_ref().and_then(sp);
    let crypto = match profiles
        .get(pname)
        .cloned()
        .or_else(|| presets::ike_preset(pname))
    {
        Some(p) => Some(p),
        None => {
            ctx.error(
                obj,
                "ike-crypto-profile",
                pspan.clone(),
                format!("refers to ike-crypto-profile \"{pname}\", which is not defined"),
                format!(
                    "define [ike-crypto-profile.{pname}] or fix the name (built in: {})",
                    presets::PRESET_NAMES.join(", ")
                ),
            );
            None
        }
    };

    // Version-specific keys.
    let version = version?;
    if !version.allows_v1() {
        if let Some(v) = &g.exchange_mode {
            ok = false;
            ctx.error(
                obj,
                "exchange-mode",
                sp(v),
                "exchange-mode is an IKEv1 setting, but the gateway is ikev2",
                "remove exchange-mode, or set version = \"ikev1\" or \"ikev2-preferred\"",
            );
        }
        if let Some(v) = &g.dpd {
            ok = false;
            ctx.error(obj, "dpd", sp(v), "dpd is an IKEv1 setting (IKEv2 uses liveness-interval), but the gateway is ikev2", "remove dpd and use liveness-interval, or set version = \"ikev1\" or \"ikev2-preferred\"");
        }
    }
    if !version.allows_v2() {
        if let Some(v) = &g.liveness_interval {
            ok = false;
            ctx.error(obj, "liveness-interval", sp(v), "liveness-interval is an IKEv2 setting (IKEv1 uses dpd), but the gateway is ikev1", "remove liveness-interval and use dpd, or set version = \"ikev2\" or \"ikev2-preferred\"");
        }
        if let Some(v) = &g.strict_cookie_validation {
            ok = false;
            ctx.error(obj, "strict-cookie-validation", sp(v), "strict-cookie-validation is an IKEv2 setting, but the gateway is ikev1", "remove strict-cookie-validation, or set version = \"ikev2\" or \"ikev2-preferred\"");
        }
    }
    if let Some(p) = &crypto
        && !ike_profile_fits(obj, p, version, pspan.clone(), ctx)
    {
        ok = false;
    }
    if let (
        Some(p),
        Some(GatewayAuth::Certificate(CertificateAuth {
            credentials: Some(cr),
            local: file,
            ..
        })),
    ) = (&crypto, &auth)
    {
        let span = g
            .certificate
            .as_ref()
            .and_then(|c| c.get_ref().local.as_ref().and_then(sp).or_else(|| sp(c)));
        suite_key_fits(obj, p, cr, file, span, ctx);
    }

    let ikev1 = if version.allows_v1() {
        let mode = match &g.exchange_mode {
            Some(v) => ctx.keyword::<ExchangeMode>(obj, "exchange-mode", v),
            None => Some(ExchangeMode::Auto),
        };
        let dpd = match &g.dpd {
            None => Some(Some(Dpd {
                interval: Duration::from_secs(defaults::DPD_INTERVAL_SECS),
                retry: defaults::DPD_RETRY,
            })),
            Some(d) => {
                let r = d.get_ref();
                let interval = ctx.duration(
                    obj,
                    "dpd.interval",
                    &r.interval,
                    Duration::from_secs(defaults::DPD_INTERVAL_SECS),
                    (2, 100),
                );
                let retry = ctx.int(
                    obj,
                    "dpd.retry",
                    &r.retry,
                    i64::from(defaults::DPD_RETRY),
                    (2, 100),
                );
                match (interval, retry) {
                    (Some(i), Some(n)) => Some(Ctx::flag(&r.enable, true).then(|| Dpd {
                        interval: i,
                        retry: u32::try_from(n).unwrap_or(defaults::DPD_RETRY),
                    })),
                    _ => None,
                }
            }
        };
        if let (Some(ExchangeMode::Aggressive), Some(p)) = (mode, &crypto) {
            if p.dh_groups.len() > 1 {
                ctx.warn(obj, "exchange-mode", g.exchange_mode.as_ref().and_then(sp), format!("aggressive mode cannot negotiate the DH group: only {} of ike-crypto-profile \"{}\" is offered", p.dh_groups[0], p.name), "list one DH group in the profile, or use main mode");
            }
            if g.pre_shared_key.is_some() {
                ctx.warn(obj, "exchange-mode", g.exchange_mode.as_ref().and_then(sp), "aggressive mode with a pre-shared key exposes a hash of the key to offline guessing", "use main mode or IKEv2, or certificates");
            }
        }
        match (mode, dpd) {
            (Some(m), Some(d)) => Some(Ikev1Settings {
                exchange_mode: m,
                dpd: d,
            }),
            _ => {
                ok = false;
                None
            }
        }
    } else {
        None
    };
    let ikev2 = if version.allows_v2() {
        let liveness = ctx.duration(
            obj,
            "liveness-interval",
            &g.liveness_interval,
            Duration::from_secs(defaults::LIVENESS_SECS),
            (1, 3600),
        );
        match liveness {
            Some(l) => Some(Ikev2Settings {
                liveness_interval: l,
                strict_cookie_validation: Ctx::flag(&g.strict_cookie_validation, false),
            }),
            None => {
                ok = false;
                None
            }
        }
    } else {
        None
    };
    let config_payload = match config_payload::gateway_cp(
        obj,
        g,
        version,
        peer.as_ref(),
        crypto.as_ref().map_or(0, |p| p.authentication_multiple),
        ctx,
    ) {
        Ok(c) => c,
        Err(()) => {
            ok = false;
            None
        }
    };
    let (tcp_encapsulation, tcp_port) = tcp_encapsulation(obj, g, version, ctx);
    let (Some(tcp_encapsulation), Some(tcp_port)) = (tcp_encapsulation, tcp_port) else {
        return None;
    };
    if !ok {
        return None;
    }
    Some(IkeGateway {
        name: name.to_owned(),
        version,
        address_family: family?,
        interface: g.interface.as_ref().map(|i| i.get_ref().clone()),
        local_address: local,
        peer: peer?,
        authentication: auth?,
        local_id,
        peer_id,
        crypto: crypto?,
        ikev1,
        ikev2,
        // A TCP-encapsulated SA frames ESP as behind a NAT (RFC 9329 §6.5): NAT-T comes with it.
        nat_traversal: Ctx::flag(&g.nat_traversal, false)
            || tcp_encapsulation != TcpEncapsulation::No,
        passive_mode: Ctx::flag(&g.passive_mode, false),
        fragmentation: Ctx::flag(&g.fragmentation, true),
        config_payload,
        tcp_encapsulation,
        tcp_port,
    })
}

/// `tcp-encapsulation` and `tcp-port` of a gateway: IKEv2 only, with NAT traversal (not
/// switched off), the port 1–65535 (default 4500).
fn tcp_encapsulation(
    obj: &Obj,
    g: &RawGateway,
    version: IkeVersion,
    ctx: &mut Ctx<'_>,
) -> (Option<TcpEncapsulation>, Option<u16>) {
    let mode = match &g.tcp_encapsulation {
        Some(v) => ctx.keyword::<TcpEncapsulation>(obj, "tcp-encapsulation", v),
        None => Some(TcpEncapsulation::No),
    };
    let port = ctx
        .int(
            obj,
            "tcp-port",
            &g.tcp_port,
            i64::from(defaults::TCP_PORT),
            (1, 65535),
        )
        .and_then(|p| u16::try_from(p).ok());
    let Some(m) = mode else {
        return (None, port);
    };
    let span = g.tcp_encapsulation.as_ref().and_then(sp);
    if m != TcpEncapsulation::No {
        if version != IkeVersion::Ikev2 {
            ctx.error(
                obj,
                "tcp-encapsulation",
                span,
                format!(
                    "TCP encapsulation (RFC 9329) is an IKEv2 feature, but the gateway is {}",
                    version
                ),
                "set version = \"ikev2\", or remove tcp-encapsulation",
            );
            return (None, port);
        }
        if g.nat_traversal.as_ref().is_some_and(|v| !*v.get_ref()) {
            ctx.error(
                obj,
                "tcp-encapsulation",
                span,
                "a TCP-encapsulated SA frames ESP as behind a NAT (RFC 9329), but nat-traversal \
                 is false",
                "remove nat-traversal = false (TCP encapsulation turns NAT traversal on), or \
                 remove tcp-encapsulation",
            );
            return (None, port);
        }
    } else if let Some(p) = &g.tcp_port {
        ctx.warn(
            obj,
            "tcp-port",
            sp(p),
            "tcp-port has no effect without tcp-encapsulation",
            "remove tcp-port, or set tcp-encapsulation = \"fallback\" or \"always\"",
        );
    }
    (Some(m), port)
}

/// The Suite B and PRIME presets authenticate with ECDSA on their curve (RFC 6380 §3): P-256
/// at 128 bits, P-384 at 256 (192-bit security). A certificate with another key still
/// negotiates, but the tunnel is not the suite it says: a warning with the key and the fix.
fn suite_key_fits(
    obj: &Obj,
    p: &IkeCryptoProfile,
    cr: &crate::Credentials,
    file: &std::path::Path,
    span: Span,
    ctx: &mut Ctx<'_>,
) {
    use ferrosec_crypto::sig::KeyKind;
    let Some(curve) = p.builtin.then(|| presets::suite_curve(&p.name)).flatten() else {
        return;
    };
    let kind = cr.certificate().key_kind();
    if kind == (KeyKind::Ecdsa { curve }) {
        return;
    }
    let other = presets::sibling_suite(&p.name);
    let fix = match kind {
        KeyKind::Ecdsa { curve: c } if presets::suite_curve(other) == Some(c) => format!(
            "issue the gateway an ECDSA P-{curve} certificate (ferrosec pki cert issue --key \
             ecdsa-p{curve} …), or use the preset \"{other}\", whose curve P-{c} the key is on"
        ),
        _ => format!(
            "issue the gateway an ECDSA P-{curve} certificate (ferrosec pki cert issue --key \
             ecdsa-p{curve} …), or use an ike-crypto-profile of your own"
        ),
    };
    ctx.warn(
        obj,
        "certificate.local",
        span,
        format!(
            "ike-crypto-profile \"{}\" authenticates with ECDSA P-{curve} (RFC 6380), but the \
             certificate in {} (subject \"{}\") has an {kind} key: the tunnel would come up, \
             but not as {}",
            p.name,
            file.display(),
            cr.subject(),
            p.name
        ),
        fix,
    );
}

/// PRIME and AES-GCM/Curve25519 in IKE need IKEv2; authentication-multiple is IKEv2 only.
fn ike_profile_fits(
    obj: &Obj,
    p: &IkeCryptoProfile,
    version: IkeVersion,
    span: Span,
    ctx: &mut Ctx<'_>,
) -> bool {
    let mut ok = true;
    if presets::is_ikev2_only(&p.name) && p.builtin && version != IkeVersion::Ikev2 {
        ctx.error(
            obj,
            "ike-crypto-profile",
            span.clone(),
            format!(
                "the PRIME suite \"{}\" is IKEv2 only, but the gateway's version is {version}",
                p.name
            ),
            "set version = \"ikev2\", or use Suite-B-GCM-128/256 which IKEv1 supports",
        );
        return false;
    }
    let v2_enc: Vec<_> = p
        .encryption
        .iter()
        .filter(|e| e.ikev1_id().is_none())
        .map(|e| e.name())
        .collect();
    let v2_groups: Vec<_> = p
        .dh_groups
        .iter()
        .filter(|g| g.ikev2_only())
        .map(|g| g.name())
        .collect();
    let fix = format!(
        "set version = \"ikev2\", or remove them from ike-crypto-profile \"{}\"",
        p.name
    );
    match version {
        IkeVersion::Ikev1 => {
            if !v2_enc.is_empty() {
                ok = false;
                ctx.error(obj, "ike-crypto-profile", span.clone(), format!("ike-crypto-profile \"{}\" has {} for the IKE SA, which IKEv1 does not support", p.name, v2_enc.join(", ")), fix.clone());
            }
            if !v2_groups.is_empty() {
                ok = false;
                ctx.error(
                    obj,
                    "ike-crypto-profile",
                    span.clone(),
                    format!(
                        "ike-crypto-profile \"{}\" has {} (Curve25519), defined for IKEv2 only",
                        p.name,
                        v2_groups.join(", ")
                    ),
                    fix.clone(),
                );
            }
            if p.has_additional_key_exchange() {
                ok = false;
                ctx.error(obj, "ike-crypto-profile", span.clone(), format!("ike-crypto-profile \"{}\" sets additional-key-exchange (ML-KEM, RFC 9370), which needs IKEv2, but the gateway is ikev1", p.name), format!("remove additional-key-exchange from \"{}\", use another profile, or set version = \"ikev2\"", p.name));
            }
            if p.authentication_multiple > 0 {
                ok = false;
                ctx.error(obj, "ike-crypto-profile", span, format!("ike-crypto-profile \"{}\" sets authentication-multiple = {}, an IKEv2 re-authentication setting, but the gateway is ikev1", p.name, p.authentication_multiple), format!("set authentication-multiple = 0 in \"{}\", use another profile, or set version = \"ikev2\"", p.name));
            }
        }
        IkeVersion::Ikev2Preferred => {
            if v2_enc.len() == p.encryption.len() || v2_groups.len() == p.dh_groups.len() {
                ok = false;
                ctx.error(obj, "ike-crypto-profile", span, format!("ike-crypto-profile \"{}\" has no IKEv1-capable cipher or DH group, so the IKEv1 fallback of ikev2-preferred cannot work", p.name), "add an AES-CBC cipher and a MODP/ECP group to the profile, or set version = \"ikev2\"");
            }
        }
        IkeVersion::Ikev2 => {}
    }
    ok
}

fn certificate(
    obj: &Obj,
    c: &Sp<RawCertificate>,
    version: Option<IkeVersion>,
    ctx: &mut Ctx<'_>,
) -> Option<CertificateAuth> {
    let r = c.get_ref();
    let mut ok = true;
    let mut path = |field: &str, v: &Option<Sp<String>>, ctx: &mut Ctx<'_>| -> Option<PathBuf> {
        match v {
            Some(p) if !p.get_ref().is_empty() => Some(PathBuf::from(p.get_ref())),
            Some(p) => {
                ctx.error(
                    obj,
                    field,
                    sp(p),
                    "the path is empty",
                    "give the path of a PEM file",
                );
                ok = false;
                None
            }
            None => {
                ctx.error(obj, field, sp(c), "is required but missing", "give the path of a PEM file, e.g. certificate = { local = \"certs/hq.pem\", key = \"certs/hq.key\", ca = [\"certs/ca.pem\"] }");
                ok = false;
                None
            }
        }
    };
    let local = path("certificate.local", &r.local, ctx);
    let key = path("certificate.key", &r.key, ctx);
    let ca: Vec<PathBuf> =
        r.ca.as_ref()
            .map(|l| l.get_ref().0.iter().map(PathBuf::from).collect())
            .unwrap_or_default();
    let crl: Vec<PathBuf> = r
        .crl
        .as_ref()
        .map(|l| l.get_ref().0.iter().map(PathBuf::from).collect())
        .unwrap_or_default();
    if let Some(l) = &r.crl
        && l.get_ref().0.iter().any(String::is_empty)
    {
        ok = false;
        ctx.error(
            obj,
            "certificate.crl",
            sp(l),
            "a path is empty",
            "give the path of each CRL file (PEM or DER), e.g. crl = [\"certs/ca.crl\"]",
        );
    }
    if ca.is_empty() {
        ok = false;
        ctx.error(
            obj,
            "certificate.ca",
            r.ca.as_ref().and_then(sp).or_else(|| sp(c)),
            "no trusted CA is given",
            "list the CA certificate(s) that sign the peer's certificate: ca = [\"certs/ca.pem\"]",
        );
    }
    let hash_and_url = match &r.hash_and_url {
        None => None,
        Some(u) => {
            let s = u.get_ref();
            if !s.starts_with("http://") {
                ok = false;
                ctx.error(
                    obj,
                    "certificate.hash-and-url",
                    sp(u),
                    format!("\"{s}\" is not an http:// URL (RFC 7296 §3.6 hash-and-URL uses HTTP)"),
                    "give the http:// URL where the DER certificate is published",
                );
            }
            if version == Some(IkeVersion::Ikev1) {
                ok = false;
                ctx.error(obj, "certificate.hash-and-url", sp(u), "hash-and-URL certificate encoding is an IKEv2 feature, but the gateway is ikev1", "remove hash-and-url or set version = \"ikev2\"");
            }
            Some(s.clone())
        }
    };
    if let Some(f) = &r.hash_and_url_fetch
        && *f.get_ref()
        && version == Some(IkeVersion::Ikev1)
    {
        ok = false;
        ctx.error(
            obj,
            "certificate.hash-and-url-fetch",
            sp(f),
            "fetching hash-and-URL certificates is an IKEv2 feature, but the gateway is ikev1",
            "remove hash-and-url-fetch or set version = \"ikev2\"",
        );
    }
    if let Some(f) = &r.crl_fetch
        && *f.get_ref()
        && version == Some(IkeVersion::Ikev1)
    {
        ok = false;
        ctx.error(
            obj,
            "certificate.crl-fetch",
            sp(f),
            "fetching CRLs from distribution points is served over IKEv2, but the gateway is ikev1",
            "remove crl-fetch (list the CA's CRL in crl instead) or set version = \"ikev2\"",
        );
    }
    if !ok {
        return None;
    }
    let (mut local, mut key, mut ca, mut crl) = (local?, key?, ca, crl);
    let mut credentials = None;
    if let Some(files) = &ctx.files {
        let (dir, now) = (files.dir.clone(), files.now);
        for p in std::iter::once(&mut local)
            .chain(Some(&mut key))
            .chain(&mut ca)
            .chain(&mut crl)
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        let checked = credentials::check(&local, &key, &ca, &crl, now);
        let span = |field: &str| {
            match field {
                "certificate.local" => r.local.as_ref().and_then(sp),
                "certificate.key" => r.key.as_ref().and_then(sp),
                "certificate.crl" => r.crl.as_ref().and_then(sp),
                _ => r.ca.as_ref().and_then(sp),
            }
            .or_else(|| sp(c))
        };
        for f in checked.warnings {
            ctx.warn(obj, f.field, span(f.field), f.message, f.fix);
        }
        for f in &checked.errors {
            ctx.error(
                obj,
                f.field,
                span(f.field),
                f.message.clone(),
                f.fix.clone(),
            );
        }
        if !checked.errors.is_empty() {
            return None;
        }
        credentials = checked.credentials;
    }
    Some(CertificateAuth {
        local,
        key,
        ca,
        hash_and_url,
        hash_and_url_fetch: Ctx::flag(&r.hash_and_url_fetch, false),
        crl,
        crl_fetch: Ctx::flag(&r.crl_fetch, false),
        credentials,
    })
}

struct TunnelEnv<'e> {
    gateways: &'e BTreeMap<String, IkeGateway>,
    known_gateways: &'e BTreeSet<&'e String>,
    ipsec_profiles: &'e BTreeMap<String, IpsecCryptoProfile>,
    monitor_profiles: &'e BTreeMap<String, MonitorProfile>,
    tunnel_interfaces: &'e BTreeMap<String, TunnelInterface>,
    raw_tunnel_interfaces: Option<&'e BTreeMap<String, RawTunnelInterface>>,
}

fn ipsec_tunnel(
    name: &str,
    t: &RawIpsecTunnel,
    obj: &Obj,
    env: &TunnelEnv<'_>,
    ctx: &mut Ctx<'_>,
) -> Option<IpsecTunnel> {
    let mut ok = true;
    let iface = ctx
        .required(
            obj,
            "tunnel-interface",
            &t.tunnel_interface,
            "set tunnel-interface = \"tunnel.N\" (a [tunnel-interface.\"tunnel.N\"] of the file)",
        )
        .cloned();
    if let Some(i) = &iface
        && !env
            .raw_tunnel_interfaces
            .is_some_and(|m| m.contains_key(i.get_ref()))
    {
        ok = false;
        ctx.error(
            obj,
            "tunnel-interface",
            sp(i),
            format!(
                "refers to tunnel-interface \"{}\", which is not defined",
                i.get_ref()
            ),
            format!(
                "define [tunnel-interface.\"{}\"] or fix the name",
                i.get_ref()
            ),
        );
    }
    let ttype = match &t.tunnel_type {
        Some(v) => ctx.keyword::<TunnelType>(obj, "type", v),
        None => Some(TunnelType::AutoKey),
    };
    let keying = match ttype {
        None => None,
        Some(TunnelType::AutoKey) => {
            if let Some(m) = &t.manual_key {
                ok = false;
                ctx.error(
                    obj,
                    "manual-key",
                    sp(m),
                    "manual-key is set on an auto-key tunnel",
                    "remove manual-key, or set type = \"manual-key\" (and remove ike-gateway)",
                );
            }
            let gw = match &t.ike_gateway {
                None => {
                    ctx.error(obj, "ike-gateway", None, "an auto-key tunnel needs an IKE gateway", "set ike-gateway = \"NAME\" (an [ike-gateway.NAME] of the file), or set type = \"manual-key\"");
                    None
                }
                Some(g) if !env.known_gateways.contains(g.get_ref()) => {
                    ctx.error(
                        obj,
                        "ike-gateway",
                        sp(g),
                        format!(
                            "refers to ike-gateway \"{}\", which is not defined",
                            g.get_ref()
                        ),
                        format!("define [ike-gateway.{}] or fix the name", g.get_ref()),
                    );
                    None
                }
                Some(g) => Some(g),
            };
            let pname = t
                .ipsec_crypto_profile
                .as_ref()
                .map_or("default", |p| p.get_ref().as_str());
            let pspan = t.ipsec_crypto_profile.as_ref().and_then(sp);
            let profile = match env
                .ipsec_profiles
                .get(pname)
                .cloned()
                .or_else(|| presets::ipsec_preset(pname))
            {
                Some(p) => Some(p),
                None => {
                    ctx.error(
                        obj,
                        "ipsec-crypto-profile",
                        pspan.clone(),
                        format!("refers to ipsec-crypto-profile \"{pname}\", which is not defined"),
                        format!(
                            "define [ipsec-crypto-profile.{pname}] or fix the name (built in: {})",
                            presets::PRESET_NAMES.join(", ")
                        ),
                    );
                    None
                }
            };
            if let (Some(g), Some(p)) = (gw.and_then(|g| env.gateways.get(g.get_ref())), &profile)
                && !ipsec_profile_fits(obj, p, g, pspan, ctx)
            {
                ok = false;
            }
            match (gw, profile) {
                (Some(g), Some(p)) => Some(Keying::AutoKey {
                    ike_gateway: g.get_ref().clone(),
                    crypto: p,
                }),
                _ => None,
            }
        }
        Some(TunnelType::ManualKey) => {
            for (field, v) in [
                ("ike-gateway", &t.ike_gateway),
                ("ipsec-crypto-profile", &t.ipsec_crypto_profile),
            ] {
                if let Some(v) = v {
                    ok = false;
                    ctx.error(
                        obj,
                        field,
                        sp(v),
                        format!("{field} is for auto-key tunnels, but type is manual-key"),
                        format!("remove {field}, or set type = \"auto-key\" and remove manual-key"),
                    );
                }
            }
            match ctx.required(obj, "manual-key", &t.manual_key, "add manual-key = { local-spi = …, remote-spi = …, encryption = …, encryption-key = …, authentication = …, authentication-key = …, local-address = …, peer-address = … }") {
                Some(m) => manual_key(obj, m, ctx).map(Keying::ManualKey),
                None => None,
            }
        }
    };

    // Proxy IDs.
    let mut proxy_ids: Vec<ProxyId> = Vec::new();
    for (i, p) in t.proxy_id.iter().flatten().enumerate() {
        match proxy_id(obj, i + 1, p, ctx) {
            Some(pid) => {
                if let Some(prev) = proxy_ids.iter().find(|x| x.name == pid.name) {
                    ok = false;
                    ctx.error(
                        obj,
                        &format!("proxy-id[{}].name", i + 1),
                        p.get_ref().name.as_ref().and_then(sp),
                        format!(
                            "proxy ID name \"{}\" is used twice in this tunnel",
                            prev.name
                        ),
                        "give each proxy ID of a tunnel its own name",
                    );
                } else if let Some(prev) = proxy_ids.iter().find(|x| same_selectors(x, &pid)) {
                    ok = false;
                    ctx.error(
                        obj,
                        &format!("proxy-id[{}]", i + 1),
                        sp(p),
                        format!(
                            "proxy ID \"{}\" repeats the selectors of proxy ID \"{}\"",
                            pid.name, prev.name
                        ),
                        "remove the duplicate",
                    );
                }
                proxy_ids.push(pid);
            }
            None => ok = false,
        }
    }

    // Anti-replay.
    let anti_replay = Ctx::flag(&t.anti_replay, true);
    let window = ctx.int(
        obj,
        "replay-window",
        &t.replay_window,
        i64::from(defaults::REPLAY_WINDOW),
        (64, 1 << 20),
    );
    if let (Some(w), Some(v)) = (window, &t.replay_window) {
        if !(w as u64).is_power_of_two() {
            ok = false;
            ctx.error(
                obj,
                "replay-window",
                sp(v),
                format!("{w} is not a power of two"),
                "use 64, 128, 256, 512, 1024, 2048, 4096 … up to 1048576",
            );
        }
        if !anti_replay {
            ctx.warn(
                obj,
                "replay-window",
                sp(v),
                "replay-window has no effect with anti-replay = false",
                "remove replay-window or enable anti-replay",
            );
        }
    }
    if !anti_replay {
        let span = t.anti_replay.as_ref().and_then(sp);
        ctx.warn(
            obj,
            "anti-replay",
            span,
            "anti-replay is off: replayed packets are accepted",
            "turn anti-replay on unless the peer sends out of order beyond any window",
        );
    }

    // Tunnel monitor.
    let monitor = match &t.tunnel_monitor {
        None => Some(None),
        Some(m) => tunnel_monitor(
            obj,
            m,
            iface
                .as_ref()
                .and_then(|i| env.tunnel_interfaces.get(i.get_ref())),
            env.monitor_profiles,
            ctx,
        )
        .map(Some),
    };
    let always_on = match t.establish.as_ref().map(|e| (e, e.get_ref().as_str())) {
        None | Some((_, "on-demand")) => Some(false),
        Some((_, "always")) => Some(true),
        Some((e, other)) => {
            ctx.error(
                obj,
                "establish",
                sp(e),
                format!("unknown value \"{other}\""),
                "use \"on-demand\" (the default: negotiated when traffic needs it) or \"always\" (up from start, renegotiated after any loss)",
            );
            None
        }
    };
    if !ok {
        return None;
    }
    Some(IpsecTunnel {
        always_on: always_on?,
        name: name.to_owned(),
        tunnel_interface: iface?.into_inner(),
        keying: keying?,
        proxy_ids,
        monitor: monitor?,
        replay_window: if anti_replay {
            Some(u32::try_from(window?).ok()?)
        } else {
            None
        },
    })
}

/// PRIME needs IKEv2; Curve25519 PFS needs IKEv2; AH cannot cross NAT.
fn ipsec_profile_fits(
    obj: &Obj,
    p: &IpsecCryptoProfile,
    g: &IkeGateway,
    span: Span,
    ctx: &mut Ctx<'_>,
) -> bool {
    let mut ok = true;
    if presets::is_ikev2_only(&p.name) && p.builtin && g.version != IkeVersion::Ikev2 {
        ok = false;
        ctx.error(
            obj,
            "ipsec-crypto-profile",
            span.clone(),
            format!(
                "the PRIME suite \"{}\" is IKEv2 only, but ike-gateway \"{}\" has version {}",
                p.name, g.name, g.version
            ),
            format!(
                "set version = \"ikev2\" in [ike-gateway.{}], or use Suite-B-GCM-128/256",
                g.name
            ),
        );
    }
    if g.version == IkeVersion::Ikev1 && p.pfs.is_some_and(DhGroup::ikev2_only) {
        ok = false;
        ctx.error(obj, "ipsec-crypto-profile", span.clone(), format!("ipsec-crypto-profile \"{}\" uses PFS group31 (Curve25519), defined for IKEv2 only, but ike-gateway \"{}\" is ikev1", p.name, g.name), "use group19/20 for PFS, or set the gateway's version to ikev2");
    }
    if p.protocol == IpsecProtocol::Ah && g.tcp_encapsulation != TcpEncapsulation::No {
        ok = false;
        ctx.error(obj, "ipsec-crypto-profile", span, format!("ipsec-crypto-profile \"{}\" uses AH, which TCP encapsulation cannot carry (RFC 9329 frames ESP only), but ike-gateway \"{}\" has tcp-encapsulation = \"{}\"", p.name, g.name, g.tcp_encapsulation), "use an ESP profile for this tunnel, or remove tcp-encapsulation from the gateway");
    } else if p.protocol == IpsecProtocol::Ah && g.nat_traversal {
        ctx.warn(obj, "ipsec-crypto-profile", span, format!("ipsec-crypto-profile \"{}\" uses AH, which cannot cross NAT, but ike-gateway \"{}\" has nat-traversal on", p.name, g.name), "use ESP if there is NAT between the peers, or turn nat-traversal off");
    }
    ok
}

fn same_selectors(a: &ProxyId, b: &ProxyId) -> bool {
    a.local == b.local
        && a.remote == b.remote
        && a.protocol == b.protocol
        && a.local_port == b.local_port
        && a.remote_port == b.remote_port
}

fn proxy_id(obj: &Obj, index: usize, p: &Sp<RawProxyId>, ctx: &mut Ctx<'_>) -> Option<ProxyId> {
    let r = p.get_ref();
    let f = |k: &str| format!("proxy-id[{index}].{k}");
    let name = match &r.name {
        Some(n) if !n.get_ref().is_empty() => Some(n.get_ref().clone()),
        Some(n) => {
            ctx.error(
                obj,
                &f("name"),
                sp(n),
                "the name is empty",
                "give the proxy ID a name",
            );
            None
        }
        None => {
            ctx.error(
                obj,
                &f("name"),
                sp(p),
                "is required but missing",
                "give every proxy ID a name, e.g. name = \"lan\"",
            );
            None
        }
    };
    let addr = |k: &str, v: &Option<Sp<String>>, ctx: &mut Ctx<'_>| -> Option<AddressSpec> {
        match v {
            None => {
                ctx.error(obj, &f(k), sp(p), "is required but missing", format!("set {k} to a prefix like \"10.1.0.0/24\", a range or \"any\""));
                None
            }
            Some(v) => ctx.parse(obj, &f(k), v, "write a prefix (10.1.0.0/24), a host (10.1.0.5), a range (10.1.0.1-10.1.0.9) or \"any\"", AddressSpec::parse),
        }
    };
    let local = addr("local", &r.local, ctx);
    let remote = addr("remote", &r.remote, ctx);
    if let (Some(l), Some(rm)) = (local, remote)
        && let (Some(a), Some(b)) = (l.is_ipv4(), rm.is_ipv4())
        && a != b
    {
        ctx.error(
            obj,
            &f("remote"),
            r.remote.as_ref().and_then(sp),
            format!("local {l} and remote {rm} are of different address families"),
            "pair IPv4 with IPv4 and IPv6 with IPv6 (use two proxy IDs for both)",
        );
        return None;
    }
    let protocol = match &r.protocol {
        None => Some(Protocol::Any),
        Some(v) => match Protocol::parse(&v.get_ref().as_text()) {
            Ok(p) => Some(p),
            Err(e) => {
                ctx.error(
                    obj,
                    &f("protocol"),
                    sp(v),
                    e.0,
                    "use any, tcp, udp, icmp, icmpv6 or a protocol number 0-255",
                );
                None
            }
        },
    };
    let port = |k: &str, v: &Option<Sp<StrOrInt>>, ctx: &mut Ctx<'_>| -> Option<PortRange> {
        match v {
            None => Some(PortRange::ANY),
            Some(v) => {
                let parsed = match v.get_ref() {
                    StrOrInt::Int(i) => u16::try_from(*i).map(PortRange::single).map_err(|_| {
                        value::ValueError(format!("{i} is not a port number 0-65535"))
                    }),
                    StrOrInt::Str(s) => PortRange::parse(s),
                };
                match parsed {
                    Ok(pr) => {
                        if !pr.is_any() && !protocol.is_some_and(Protocol::has_ports) {
                            ctx.error(
                                obj,
                                &f(k),
                                sp(v),
                                format!(
                                    "a port is set but the protocol is {}",
                                    protocol.map_or("unknown".to_owned(), |p| p.to_string())
                                ),
                                "set protocol = \"tcp\" or \"udp\", or remove the port",
                            );
                            return None;
                        }
                        Some(pr)
                    }
                    Err(e) => {
                        ctx.error(
                            obj,
                            &f(k),
                            sp(v),
                            e.0,
                            "give a port 1-65535, a range \"1000-2000\", or 0 for any",
                        );
                        None
                    }
                }
            }
        }
    };
    let local_port = port("local-port", &r.local_port, ctx);
    let remote_port = port("remote-port", &r.remote_port, ctx);
    Some(ProxyId {
        name: name?,
        local: local?,
        remote: remote?,
        protocol: protocol?,
        local_port: local_port?,
        remote_port: remote_port?,
    })
}

fn tunnel_monitor(
    obj: &Obj,
    m: &Sp<RawTunnelMonitor>,
    iface: Option<&TunnelInterface>,
    profiles: &BTreeMap<String, MonitorProfile>,
    ctx: &mut Ctx<'_>,
) -> Option<TunnelMonitor> {
    let r = m.get_ref();
    let dest = match ctx.required(obj, "tunnel-monitor.destination", &r.destination, "set destination to an address across the tunnel, e.g. the peer's tunnel interface or LAN gateway") {
        Some(d) => ctx.parse(obj, "tunnel-monitor.destination", d, "give an IP address across the tunnel", value::parse_ip),
        None => None,
    };
    let source = match &r.source {
        Some(s) => ctx.parse(
            obj,
            "tunnel-monitor.source",
            s,
            "give a local IP address",
            value::parse_ip,
        ),
        None => match (dest, iface) {
            (Some(d), Some(i)) => match i
                .addresses
                .iter()
                .find(|a| a.addr().is_ipv4() == d.is_ipv4())
            {
                Some(a) => Some(a.addr()),
                None => {
                    ctx.error(obj, "tunnel-monitor.source", sp(m), format!("no source address: tunnel interface \"{}\" has no {} address", i.name, if d.is_ipv4() { "IPv4" } else { "IPv6" }), format!("set tunnel-monitor.source, or give [tunnel-interface.\"{}\"] an address", i.name));
                    None
                }
            },
            _ => None,
        },
    };
    if let (Some(d), Some(s)) = (dest, source)
        && d.is_ipv4() != s.is_ipv4()
    {
        ctx.error(
            obj,
            "tunnel-monitor.source",
            r.source.as_ref().and_then(sp),
            format!("source {s} and destination {d} are of different address families"),
            "use a source of the destination's family",
        );
        return None;
    }
    let pname = r
        .profile
        .as_ref()
        .map_or("default", |p| p.get_ref().as_str());
    let profile = match profiles
        .get(pname)
        .cloned()
        .or_else(|| presets::monitor_preset(pname))
    {
        Some(p) => Some(p),
        None => {
            ctx.error(
                obj,
                "tunnel-monitor.profile",
                r.profile.as_ref().and_then(sp),
                format!("refers to monitor-profile \"{pname}\", which is not defined"),
                format!(
                    "define [monitor-profile.{pname}] or fix the name (\"default\" is built in)"
                ),
            );
            None
        }
    };
    Some(TunnelMonitor {
        destination: dest?,
        source: source?,
        profile: profile?,
    })
}

fn manual_key(obj: &Obj, m: &Sp<RawManualKey>, ctx: &mut Ctx<'_>) -> Option<ManualKey> {
    let r = m.get_ref();
    let mut ok = true;
    let spi = |k: &str, v: &Option<Sp<StrOrInt>>, ctx: &mut Ctx<'_>| -> Option<Spi> {
        let field = format!("manual-key.{k}");
        let Some(v) = v else {
            ctx.error(obj, &field, sp(m), "is required but missing", format!("set {k} = \"0x1000\" (hex or decimal, 256 or above); it must mirror the peer's {}", if k == "local-spi" { "remote-spi" } else { "local-spi" }));
            return None;
        };
        let parsed = match v.get_ref() {
            StrOrInt::Str(s) => Spi::parse(s),
            StrOrInt::Int(i) => u64::try_from(*i)
                .map_err(|_| value::ValueError(format!("{i} is negative")))
                .and_then(Spi::from_u64),
        };
        match parsed {
            Ok(s) => Some(s),
            Err(e) => {
                ctx.error(
                    obj,
                    &field,
                    sp(v),
                    e.0,
                    "write the SPI in hex (\"0x1000\") or decimal, from 256 to 4294967295",
                );
                None
            }
        }
    };
    let local_spi = spi("local-spi", &r.local_spi, ctx);
    let remote_spi = spi("remote-spi", &r.remote_spi, ctx);
    let protocol = match &r.protocol {
        Some(v) => ctx.keyword::<IpsecProtocol>(obj, "manual-key.protocol", v),
        None => Some(IpsecProtocol::Esp),
    };
    let encryption = match (protocol, &r.encryption) {
        (Some(IpsecProtocol::Esp), Some(v)) => ctx
            .keyword::<EspEncryption>(obj, "manual-key.encryption", v)
            .map(Some),
        (Some(IpsecProtocol::Esp), None) => {
            ctx.error(
                obj,
                "manual-key.encryption",
                sp(m),
                "is required but missing for ESP",
                "set encryption = \"aes-256-cbc\" (or another ESP cipher)",
            );
            None
        }
        (Some(IpsecProtocol::Ah), Some(v)) => {
            ctx.error(
                obj,
                "manual-key.encryption",
                sp(v),
                "AH does not encrypt; encryption is for ESP only",
                "remove encryption and encryption-key, or set protocol = \"esp\"",
            );
            None
        }
        (_, _) => Some(None),
    };
    let authentication = match &r.authentication {
        Some(v) => ctx.keyword::<IpsecAuthentication>(obj, "manual-key.authentication", v),
        None if encryption.flatten().is_some_and(EspEncryption::is_aead) => {
            Some(IpsecAuthentication::None)
        }
        None => {
            ctx.error(
                obj,
                "manual-key.authentication",
                sp(m),
                "is required but missing",
                "set authentication = \"sha256\" (or another hash)",
            );
            None
        }
    };
    if let (Some(enc), Some(auth)) = (encryption, authentication) {
        let aead = enc.is_some_and(EspEncryption::is_aead);
        if auth == IpsecAuthentication::None && !aead {
            ok = false;
            ctx.error(
                obj,
                "manual-key.authentication",
                r.authentication.as_ref().and_then(sp),
                format!(
                    "authentication none is allowed only with an AEAD cipher, but encryption is {}",
                    enc.map_or("absent (AH)".to_owned(), |e| e.to_string())
                ),
                "use a hash such as sha256, or an AES-GCM/CCM cipher",
            );
        }
        if auth != IpsecAuthentication::None && aead {
            ok = false;
            ctx.error(obj, "manual-key.authentication", r.authentication.as_ref().and_then(sp), format!("{} carries its own integrity; a separate authentication algorithm cannot be used with it", enc.map_or(String::new(), |e| e.to_string())), "set authentication = \"none\" (or remove it)");
        }
    }
    let key = |field: &str,
               v: &Option<Sp<RawSecret>>,
               want: Option<usize>,
               what: String,
               ctx: &mut Ctx<'_>|
     -> Option<Secret> {
        let full = format!("manual-key.{field}");
        match (v, want) {
            (None, Some(0)) | (None, None) => Some(Secret::new(Vec::new())),
            (Some(v), Some(0)) => {
                ctx.error(
                    obj,
                    &full,
                    sp(v),
                    format!("{what} takes no key"),
                    format!("remove {field}"),
                );
                None
            }
            (None, Some(n)) => {
                ctx.error(
                    obj,
                    &full,
                    sp(m),
                    format!("is required for {what}"),
                    format!("give {n} bytes ({} hex digits), e.g. \"0x…\"", n * 2),
                );
                None
            }
            (Some(v), Some(n)) => match value::parse_hex_key(&v.get_ref().0) {
                Ok(bytes) if bytes.len() == n => Some(Secret::new(bytes)),
                Ok(bytes) => {
                    ctx.error(
                        obj,
                        &full,
                        sp(v),
                        format!(
                            "the key is {} bytes long, but {what} needs {n} bytes",
                            bytes.len()
                        ),
                        format!("give exactly {n} bytes ({} hex digits)", n * 2),
                    );
                    None
                }
                Err(e) => {
                    ctx.error(
                        obj,
                        &full,
                        sp(v),
                        e.0,
                        "write the key in hex, e.g. \"0x00112233…\"",
                    );
                    None
                }
            },
            (Some(_), None) => None, // algorithm unknown: already reported
        }
    };
    let enc_len = match (protocol, encryption) {
        (Some(IpsecProtocol::Ah), _) => Some(0),
        (_, Some(Some(e))) => Some(e.manual_key_len()),
        _ => None,
    };
    let enc_what = encryption.flatten().map_or("AH".to_owned(), |e| {
        if e.is_aead() {
            format!("{e} (key + salt)")
        } else {
            e.to_string()
        }
    });
    let encryption_key = key("encryption-key", &r.encryption_key, enc_len, enc_what, ctx);
    let auth_len = authentication.map(|a| a.hash().map_or(0, HashAlgorithm::key_len));
    let auth_what = authentication.map_or(String::new(), |a| {
        if a == IpsecAuthentication::None {
            "authentication none".to_owned()
        } else {
            format!("HMAC-{}", a.name().to_uppercase())
        }
    });
    let authentication_key = key(
        "authentication-key",
        &r.authentication_key,
        auth_len,
        auth_what,
        ctx,
    );
    let addr = |k: &str, v: &Option<Sp<String>>, ctx: &mut Ctx<'_>| -> Option<IpAddr> {
        let field = format!("manual-key.{k}");
        match v {
            None => {
                ctx.error(
                    obj,
                    &field,
                    sp(m),
                    "is required but missing",
                    format!("set {k} to an IP address"),
                );
                None
            }
            Some(v) => ctx.parse(obj, &field, v, "give an IP address", value::parse_ip),
        }
    };
    let local = addr("local-address", &r.local_address, ctx);
    let peer = addr("peer-address", &r.peer_address, ctx);
    if let (Some(l), Some(p)) = (local, peer)
        && l.is_ipv4() != p.is_ipv4()
    {
        ok = false;
        ctx.error(
            obj,
            "manual-key.peer-address",
            r.peer_address.as_ref().and_then(sp),
            format!("peer-address {p} and local-address {l} are of different address families"),
            "use an IPv4 pair or an IPv6 pair",
        );
    }
    if !ok {
        return None;
    }
    Some(ManualKey {
        local_spi: local_spi?,
        remote_spi: remote_spi?,
        protocol: protocol?,
        encryption: encryption?,
        encryption_key: encryption_key?,
        authentication: authentication?,
        authentication_key: authentication_key?,
        local_address: local?,
        peer_address: peer?,
    })
}

/// Rules across tunnels: 250 proxy IDs per interface, unique proxy IDs per gateway, unique
/// inbound manual SPIs.
fn cross_tunnel_rules(
    tunnels: &BTreeMap<String, IpsecTunnel>,
    _gateways: &BTreeMap<String, IkeGateway>,
    raw: Option<&BTreeMap<String, RawIpsecTunnel>>,
    ctx: &mut Ctx<'_>,
) {
    let mut per_iface: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
    for t in tunnels.values() {
        per_iface
            .entry(&t.tunnel_interface)
            .or_default()
            .push((&t.name, t.proxy_ids.len().max(1)));
    }
    for (iface, list) in &per_iface {
        let total: usize = list.iter().map(|(_, n)| n).sum();
        if total > defaults::MAX_PROXY_IDS {
            let last = list.last().map_or("", |(n, _)| *n);
            let obj = ctx.obj("ipsec-tunnel", last);
            // At most 8 names: the message stays readable with thousands of tunnels.
            let names: Vec<&str> = list.iter().take(8).map(|(n, _)| *n).collect();
            let more = match list.len().saturating_sub(names.len()) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            ctx.error(&obj, "proxy-id", None, format!("tunnel interface \"{iface}\" carries {total} proxy IDs (ipsec-tunnel {}{more}); a tunnel interface can have at most {}", quoted(&names), defaults::MAX_PROXY_IDS), "merge proxy IDs into wider prefixes, or spread the tunnels over more tunnel interfaces");
        }
    }
    // Unique proxy IDs per gateway.
    let mut seen: BTreeMap<&str, Vec<(&str, &ProxyId)>> = BTreeMap::new();
    for t in tunnels.values() {
        if let Keying::AutoKey { ike_gateway, .. } = &t.keying {
            let list = seen.entry(ike_gateway).or_default();
            for p in &t.proxy_ids {
                if let Some((other, op)) = list
                    .iter()
                    .find(|(o, op)| *o != t.name && same_selectors(op, p))
                {
                    let obj = ctx.obj("ipsec-tunnel", &t.name);
                    ctx.error(&obj, "proxy-id", None, format!("proxy ID \"{}\" has the same selectors as proxy ID \"{}\" of ipsec-tunnel \"{other}\" on the same ike-gateway \"{ike_gateway}\"", p.name, op.name), "proxy IDs must be unique per gateway: change or remove one");
                }
            }
            list.extend(t.proxy_ids.iter().map(|p| (t.name.as_str(), p)));
        }
    }
    // Unique inbound SPIs for manual keys.
    let mut spis: BTreeMap<(u16, u32), &str> = BTreeMap::new();
    for t in tunnels.values() {
        if let Keying::ManualKey(m) = &t.keying {
            let k = (m.protocol.iana_id(), m.local_spi.0);
            if let Some(other) = spis.insert(k, &t.name) {
                let obj = ctx.obj("ipsec-tunnel", &t.name);
                let span = raw
                    .and_then(|r| r.get(&t.name))
                    .and_then(|r| r.manual_key.as_ref())
                    .and_then(|m| m.get_ref().local_spi.as_ref())
                    .and_then(sp);
                ctx.error(&obj, "manual-key.local-spi", span, format!("local-spi {} is also the local-spi of ipsec-tunnel \"{other}\"; inbound packets could not be told apart", m.local_spi), "give each manual-key tunnel its own local-spi");
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn static_routes(
    vr: &str,
    v: &RawVirtualRouter,
    obj: &Obj,
    tunnels: &BTreeMap<String, TunnelInterface>,
    raw_tunnels: Option<&BTreeMap<String, RawTunnelInterface>>,
    physical: &BTreeSet<String>,
    ctx: &mut Ctx<'_>,
) -> Vec<StaticRoute> {
    let mut out: Vec<StaticRoute> = Vec::new();
    for (i, r) in v.static_route.iter().flatten().enumerate() {
        let rr = r.get_ref();
        let f = |k: &str| format!("static-route[{}].{k}", i + 1);
        let name = match &rr.name {
            Some(n) => {
                if out.iter().any(|x| &x.name == n.get_ref()) {
                    ctx.error(
                        obj,
                        &f("name"),
                        sp(n),
                        format!(
                            "static route name \"{}\" is used twice in this virtual router",
                            n.get_ref()
                        ),
                        "give each static route its own name",
                    );
                    None
                } else {
                    Some(n.get_ref().clone())
                }
            }
            None => {
                ctx.error(
                    obj,
                    &f("name"),
                    sp(r),
                    "is required but missing",
                    "give every static route a name",
                );
                None
            }
        };
        let dest = match &rr.destination {
            Some(d) => ctx.parse(
                obj,
                &f("destination"),
                d,
                "write a prefix like \"10.2.0.0/24\"",
                value::parse_prefix,
            ),
            None => {
                ctx.error(
                    obj,
                    &f("destination"),
                    sp(r),
                    "is required but missing",
                    "set destination to a prefix like \"10.2.0.0/24\"",
                );
                None
            }
        };
        let iface = match &rr.interface {
            None => {
                ctx.error(
                    obj,
                    &f("interface"),
                    sp(r),
                    "is required but missing",
                    "set interface = \"tunnel.N\" or a physical interface",
                );
                None
            }
            Some(n) => {
                let name = n.get_ref();
                if name.starts_with("tunnel.") {
                    if !raw_tunnels.is_some_and(|m| m.contains_key(name)) {
                        ctx.error(
                            obj,
                            &f("interface"),
                            sp(n),
                            format!("refers to tunnel-interface \"{name}\", which is not defined"),
                            format!("define [tunnel-interface.\"{name}\"] or fix the name"),
                        );
                        None
                    } else if let Some(t) = tunnels.get(name).filter(|t| t.virtual_router != vr) {
                        ctx.error(obj, &f("interface"), sp(n), format!("tunnel-interface \"{name}\" belongs to virtual-router \"{}\", not \"{vr}\"", t.virtual_router), format!("set virtual-router = \"{vr}\" in [tunnel-interface.\"{name}\"] or move the route"));
                        None
                    } else {
                        Some(name.clone())
                    }
                } else if !physical.contains(name) {
                    ctx.error(obj, &f("interface"), sp(n), format!("interface \"{name}\" does not exist in this configuration (it is in no zone and no gateway uses it)"), format!("list \"{name}\" in a [zone.NAME] interfaces, or fix the name"));
                    None
                } else {
                    Some(name.clone())
                }
            }
        };
        let next_hop = match &rr.next_hop {
            None => Some(None),
            Some(n) => ctx
                .parse(
                    obj,
                    &f("next-hop"),
                    n,
                    "give the next hop's IP address",
                    value::parse_ip,
                )
                .map(Some),
        };
        if let (Some(d), Some(Some(nh))) = (dest, next_hop)
            && d.addr().is_ipv4() != nh.is_ipv4()
        {
            ctx.error(
                obj,
                &f("next-hop"),
                rr.next_hop.as_ref().and_then(sp),
                format!("next hop {nh} and destination {d} are of different address families"),
                "use a next hop of the destination's family",
            );
            continue;
        }
        let metric = ctx.int(
            obj,
            &f("metric"),
            &rr.metric,
            i64::from(defaults::ROUTE_METRIC),
            (1, 65535),
        );
        if let (Some(name), Some(destination), Some(interface), Some(next_hop), Some(metric)) =
            (name, dest, iface, next_hop, metric)
        {
            out.push(StaticRoute {
                name,
                destination,
                interface,
                next_hop,
                metric: u32::try_from(metric).unwrap_or(defaults::ROUTE_METRIC),
            });
        }
    }
    out
}

/// A fail-over monitor with no backup route warns.
fn failover_backups(
    tunnels: &BTreeMap<String, IpsecTunnel>,
    vrs: &BTreeMap<String, VirtualRouter>,
    ctx: &mut Ctx<'_>,
) {
    for t in tunnels.values() {
        let Some(m) = &t.monitor else { continue };
        if m.profile.action != MonitorAction::FailOver {
            continue;
        }
        let routes: Vec<&StaticRoute> = vrs.values().flat_map(|v| &v.static_routes).collect();
        let has_backup = routes
            .iter()
            .filter(|r| r.interface == t.tunnel_interface)
            .any(|primary| {
                routes.iter().any(|b| {
                    b.destination == primary.destination
                        && b.interface != t.tunnel_interface
                        && b.metric > primary.metric
                })
            });
        if !has_backup {
            let obj = ctx.obj("ipsec-tunnel", &t.name);
            ctx.warn(&obj, "tunnel-monitor.profile", None, format!("monitor profile \"{}\" fails over, but no static route with a higher metric leads to the same destination through another interface, so there is nothing to fail over to", m.profile.name), format!("add a backup static route with a higher metric than the route via {}", t.tunnel_interface));
        }
    }
}

fn zone_match(
    obj: &Obj,
    field: &str,
    v: &Option<Sp<StrList>>,
    zones: &BTreeMap<String, Zone>,
    ctx: &mut Ctx<'_>,
) -> Option<ZoneMatch> {
    let v = ctx.required(
        obj,
        field,
        v,
        &format!("set {field} = [\"ZONE\"] (a [zone.NAME] of the file) or [\"any\"]"),
    )?;
    let list = &v.get_ref().0;
    if list.is_empty() {
        ctx.error(
            obj,
            field,
            sp(v),
            "the list is empty",
            "give at least one zone, or \"any\"",
        );
        return None;
    }
    if list.iter().any(|z| z == "any") {
        if list.len() > 1 {
            ctx.error(
                obj,
                field,
                sp(v),
                "\"any\" is listed with other zones",
                "use [\"any\"] alone, or list the zones",
            );
            return None;
        }
        return Some(ZoneMatch::Any);
    }
    let mut ok = true;
    for z in list {
        if !zones.contains_key(z) {
            ok = false;
            ctx.error(
                obj,
                field,
                sp(v),
                format!("refers to zone \"{z}\", which is not defined"),
                format!("define [zone.{z}] or fix the name"),
            );
        }
    }
    ok.then(|| ZoneMatch::Zones(list.clone()))
}

fn addr_list(
    obj: &Obj,
    field: &str,
    v: &Option<Sp<StrList>>,
    ctx: &mut Ctx<'_>,
) -> Option<Vec<AddressSpec>> {
    let Some(v) = v else {
        return Some(vec![AddressSpec::Any]);
    };
    if v.get_ref().0.is_empty() {
        ctx.error(
            obj,
            field,
            sp(v),
            "the list is empty",
            "give at least one address, or \"any\"",
        );
        return None;
    }
    let mut out = Vec::new();
    for s in &v.get_ref().0 {
        match AddressSpec::parse(s) {
            Ok(a) => out.push(a),
            Err(e) => {
                ctx.error(
                    obj,
                    field,
                    sp(v),
                    e.0,
                    "write prefixes (10.1.0.0/24), hosts, ranges (10.1.0.1-10.1.0.9) or \"any\"",
                );
                return None;
            }
        }
    }
    Some(out)
}

fn security_rule(
    r: &Sp<RawSecurityRule>,
    zones: &BTreeMap<String, Zone>,
    names: &mut BTreeMap<String, Span>,
    ctx: &mut Ctx<'_>,
) -> Option<SecurityRule> {
    let rr = r.get_ref();
    let pos = Some(Position::of_offset(ctx.text, r.span().start));
    let name = match &rr.name {
        Some(n) => n.get_ref().clone(),
        None => {
            let obj = Obj {
                kind: "security-rule",
                name: None,
                pos,
            };
            ctx.error(
                &obj,
                "name",
                sp(r),
                "is required but missing",
                "give every [[security-rule]] a unique name = \"…\"",
            );
            return None;
        }
    };
    let name_span = rr.name.as_ref().and_then(sp);
    ctx.check_name("security-rule", &name, name_span.clone());
    let obj = Obj {
        kind: "security-rule",
        name: Some(name.clone()),
        pos: name_span
            .clone()
            .map(|s| Position::of_offset(ctx.text, s.start)),
    };
    if let Some(first) = names.get(&name) {
        let line = first
            .clone()
            .map_or(0, |s| Position::of_offset(ctx.text, s.start).line);
        ctx.error(
            &obj,
            "name",
            name_span.clone(),
            format!("another security rule (line {line}) has the same name"),
            "give every security rule a unique name",
        );
    } else {
        names.insert(name.clone(), name_span);
    }
    let from = zone_match(&obj, "from", &rr.from, zones, ctx);
    let to = zone_match(&obj, "to", &rr.to, zones, ctx);
    let source = addr_list(&obj, "source", &rr.source, ctx);
    let destination = addr_list(&obj, "destination", &rr.destination, ctx);
    let service = match &rr.service {
        None => Some(vec![Service::Any]),
        Some(v) => {
            let mut out = Vec::new();
            let mut ok = !v.get_ref().0.is_empty();
            if !ok {
                ctx.error(
                    &obj,
                    "service",
                    sp(v),
                    "the list is empty",
                    "give at least one service, or \"any\"",
                );
            }
            for s in &v.get_ref().0 {
                match Service::parse(s) {
                    Ok(x) => out.push(x),
                    Err(e) => {
                        ok = false;
                        ctx.error(
                            &obj,
                            "service",
                            sp(v),
                            e.0,
                            "use \"any\", \"tcp/443\", \"udp/53\" or \"tcp/8000-8080\"",
                        );
                    }
                }
            }
            ok.then_some(out)
        }
    };
    let action = match ctx.required(
        &obj,
        "action",
        &rr.action,
        "set action = \"allow\" or \"deny\"",
    ) {
        Some(a) => ctx.keyword::<RuleAction>(&obj, "action", a),
        None => None,
    };
    Some(SecurityRule {
        name,
        description: rr.description.as_ref().map(|d| d.get_ref().clone()),
        disabled: Ctx::flag(&rr.disabled, false),
        from: from?,
        to: to?,
        source: source?,
        destination: destination?,
        service: service?,
        action: action?,
    })
}
