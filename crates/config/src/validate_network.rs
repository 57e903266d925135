//! Tunnel interfaces, static routes, zones and security rules.

use super::*;

/// A Linux interface name: 1-15 bytes, no '/', ':' or whitespace.
pub(super) fn check_ifname(obj: &Obj, field: &str, span: Span, name: &str, ctx: &mut Ctx<'_>) {
    if name.is_empty()
        || name.len() > 15
        || name.contains(['/', ':'])
        || name.chars().any(char::is_whitespace)
    {
        ctx.error(obj, field, span, format!("\"{name}\" is not a valid interface name"), "use a Linux interface name of 1 to 15 characters without '/', ':' or spaces, e.g. eth0");
    }
}

pub(super) fn tunnel_interface(
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
pub(super) fn mss_clamp(
    obj: &Obj,
    v: &Option<Sp<StrOrInt>>,
    ctx: &mut Ctx<'_>,
) -> Option<MssClamp> {
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

#[allow(clippy::too_many_arguments)]
pub(super) fn static_routes(
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
pub(super) fn failover_backups(
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

pub(super) fn zone_match(
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

pub(super) fn addr_list(
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

pub(super) fn security_rule(
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

/// A virtual router's physical members (`interfaces`) and routing table (`routing-table`).
/// `claimed` holds the members of the routers checked before, so that an interface is in one
/// router only, and `tables` their tables.
pub(super) fn vr_membership(
    vr: &str,
    v: &RawVirtualRouter,
    obj: &Obj,
    tunnels: &BTreeMap<String, TunnelInterface>,
    claimed: &mut BTreeMap<String, String>,
    tables: &mut BTreeMap<u32, String>,
    ctx: &mut Ctx<'_>,
) -> (Vec<String>, u32) {
    let mut members = Vec::new();
    if let Some(list) = &v.interfaces {
        for name in &list.get_ref().0 {
            check_ifname(obj, "interfaces", sp(list), name, ctx);
            if name.starts_with("tunnel.") {
                let now = tunnels
                    .get(name)
                    .map_or("default", |t| t.virtual_router.as_str());
                ctx.error(obj, "interfaces", sp(list), format!("\"{name}\" is a tunnel interface; a tunnel interface joins a virtual router through its own virtual-router key (it is in \"{now}\")"), format!("remove \"{name}\" from interfaces and set virtual-router = \"{vr}\" in [tunnel-interface.\"{name}\"]"));
            } else if let Some(other) = claimed.get(name) {
                ctx.error(obj, "interfaces", sp(list), format!("interface \"{name}\" is already in virtual-router \"{other}\"; an interface belongs to one virtual router"), format!("remove \"{name}\" from one of the two"));
            } else if vr == "default" {
                // `default` holds every interface no other router lists; naming one is harmless.
                claimed.insert(name.clone(), vr.to_owned());
            } else {
                claimed.insert(name.clone(), vr.to_owned());
                members.push(name.clone());
            }
        }
    }
    let table = match &v.routing_table {
        None => derived_routing_table(vr),
        Some(t) if vr == "default" => {
            if *t.get_ref() != i64::from(MAIN_TABLE) {
                ctx.error(obj, "routing-table", sp(t), format!("{} is not the main table: the default virtual router's routes are the host's main table ({MAIN_TABLE})", t.get_ref()), "remove routing-table from [virtual-router.default]; give other virtual routers their own tables");
            }
            MAIN_TABLE
        }
        Some(t) => {
            let n = *t.get_ref();
            if !(1..=i64::from(u32::MAX)).contains(&n) || (253..=255).contains(&n) {
                ctx.error(obj, "routing-table", sp(t), format!("{n} cannot be a virtual router's table (0 is unspecified, 253 to 255 are the kernel's default, main and local tables)"), "use a table number from 1 to 252 or from 256 to 4294967295, e.g. 1001");
                derived_routing_table(vr)
            } else {
                u32::try_from(n).unwrap_or(MAIN_TABLE)
            }
        }
    };
    if let Some(other) = tables.get(&table) {
        let field = if v.routing_table.is_some() {
            "routing-table"
        } else {
            "name"
        };
        ctx.error(obj, field, v.routing_table.as_ref().and_then(sp), format!("routing table {table} is already virtual-router \"{other}\"'s"), format!("set routing-table to a table of its own in [virtual-router.{vr}] (routing-table = {} is free)", (1001..).find(|n| !tables.contains_key(n)).unwrap_or(1001)));
    } else {
        tables.insert(table, vr.to_owned());
    }
    (members, table)
}

/// A static route through a physical interface stays in that interface's virtual router: the
/// router's table is looked up only for packets that arrive on its members.
pub(super) fn vr_route_members(
    vrs: &BTreeMap<String, VirtualRouter>,
    claimed: &BTreeMap<String, String>,
    raw: Option<&BTreeMap<String, RawVirtualRouter>>,
    ctx: &mut Ctx<'_>,
) {
    for (name, vr) in vrs {
        for (i, r) in vr.static_routes.iter().enumerate() {
            if r.interface.starts_with("tunnel.") {
                continue;
            }
            let owner = claimed
                .get(&r.interface)
                .filter(|o| o.as_str() != "default")
                .map_or("default", String::as_str);
            if owner == name {
                continue;
            }
            let span = raw
                .and_then(|m| m.get(name))
                .and_then(|v| v.static_route.as_ref())
                .and_then(|l| {
                    l.iter().find(|x| {
                        x.get_ref()
                            .name
                            .as_ref()
                            .is_some_and(|n| n.get_ref() == &r.name)
                    })
                })
                .and_then(|x| x.get_ref().interface.as_ref().and_then(sp));
            let obj = ctx.obj("virtual-router", name);
            let fix = if owner == "default" {
                format!(
                    "add \"{}\" to interfaces in [virtual-router.{name}], or move the route to virtual-router default",
                    r.interface
                )
            } else {
                format!(
                    "move the route to [virtual-router.{owner}], or move \"{}\" to this router's interfaces",
                    r.interface
                )
            };
            ctx.error(&obj, &format!("static-route[{}].interface", i + 1), span, format!("interface \"{}\" is in virtual-router \"{owner}\", not \"{name}\"; a route of one virtual router cannot leave by another's interface", r.interface), fix);
        }
    }
}
