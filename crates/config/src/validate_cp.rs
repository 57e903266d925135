//! `config-payload` of an IKE gateway (IKEv2 configuration payload, R-V2-12, RFC 7296 §2.19):
//! its own rules, then the rules that need the tunnels, tunnel interfaces and routes.

use super::*;

/// The routes a server gateway's pool gets through its tunnel interface are named this.
fn pool_route_name(gateway: &str) -> String {
    format!("config-payload-pool-{gateway}")
}

/// The gateway's own rules. `None` inside `Ok`: no configuration payload; `Err`: an error was
/// reported.
pub(super) fn gateway_cp(
    obj: &Obj,
    g: &RawGateway,
    version: IkeVersion,
    peer: Option<&PeerAddress>,
    authentication_multiple: u8,
    ctx: &mut Ctx<'_>,
) -> Result<Option<ConfigPayload>, ()> {
    let Some(c) = &g.config_payload else {
        return Ok(None);
    };
    let span = sp(c);
    let r = c.get_ref();
    let field = |k: &str| format!("config-payload.{k}");
    match version {
        IkeVersion::Ikev2 => {}
        IkeVersion::Ikev1 => {
            ctx.error(obj, "config-payload", span, "the configuration payload is an IKEv2 exchange, and IKEv1 mode-config is not built, but the gateway is ikev1", "remove config-payload, or set version = \"ikev2\" on both sides");
            return Err(());
        }
        IkeVersion::Ikev2Preferred => {
            ctx.error(obj, "config-payload", span, "version = \"ikev2-preferred\" may fall back to IKEv1, whose mode-config is not built, so the configuration payload would be lost", "set version = \"ikev2\" or remove config-payload");
            return Err(());
        }
    }
    let request = Ctx::flag(&r.request, false);
    let mut ok = true;
    if request && r.pool.is_some() {
        ctx.error(obj, &field("pool"), r.pool.as_ref().and_then(sp), "request = true and pool are both set: a gateway either asks for an address (the client) or hands them out (the server)", "keep request = true on the client's gateway and pool on the server's");
        return Err(());
    }
    if request {
        for (k, v) in [("dns", r.dns.is_some()), ("subnets", r.subnets.is_some())] {
            if v {
                ctx.error(
                    obj,
                    &field(k),
                    span.clone(),
                    format!(
                        "{k} is what a server hands out, but this gateway asks (request = true)"
                    ),
                    format!("remove {k} here; set it beside pool on the server's gateway"),
                );
                ok = false;
            }
        }
        if r.required.is_some() {
            ctx.error(obj, &field("required"), span.clone(), "required is a server setting (refuse peers that send no configuration payload), but this gateway asks (request = true)", "remove required here");
            ok = false;
        }
        if matches!(peer, Some(PeerAddress::Dynamic)) {
            ctx.error(obj, &field("request"), span.clone(), "a client asks for its address when it initiates, but peer-address is \"dynamic\" (this side only responds)", "set peer-address to the server's address or name");
            ok = false;
        }
        if Ctx::flag(&g.passive_mode, false) {
            ctx.error(obj, &field("request"), span.clone(), "a client asks for its address when it initiates, but passive-mode = true (this side never initiates)", "set passive-mode = false or remove config-payload");
            ok = false;
        }
        return if ok {
            Ok(Some(ConfigPayload::Request))
        } else {
            Err(())
        };
    }
    let Some(pool_v) = &r.pool else {
        if r.request.is_some() && r.dns.is_none() && r.subnets.is_none() && r.required.is_none() {
            // `request = false` alone: off.
            return Ok(None);
        }
        ctx.error(obj, &field("pool"), span, "config-payload neither asks for an address (request = true) nor hands them out (pool)", "on a client set config-payload = { request = true }; on a server set pool = \"10.9.0.0/24\" (with dns, subnets and required as needed)");
        return Err(());
    };
    let mut pool: Vec<IpNet> = Vec::new();
    for s in &pool_v.get_ref().0 {
        match value::parse_prefix(s) {
            Ok(n)
                if pool
                    .iter()
                    .any(|p| p.addr().is_ipv4() == n.addr().is_ipv4()) =>
            {
                ctx.error(
                    obj,
                    &field("pool"),
                    sp(pool_v),
                    format!("{n}: a second pool of the same address family"),
                    "give at most one IPv4 and one IPv6 prefix",
                );
                ok = false;
            }
            Ok(n) => pool.push(n),
            Err(e) => {
                ctx.error(
                    obj,
                    &field("pool"),
                    sp(pool_v),
                    e.to_string(),
                    "give a prefix like \"10.9.0.0/24\" or \"fd09::/112\"",
                );
                ok = false;
            }
        }
    }
    if pool.is_empty() && ok {
        ctx.error(
            obj,
            &field("pool"),
            sp(pool_v),
            "the pool is empty",
            "give a prefix like \"10.9.0.0/24\"",
        );
        ok = false;
    }
    let mut dns = Vec::new();
    for s in r.dns.iter().flat_map(|l| l.get_ref().0.iter()) {
        match value::parse_ip(s) {
            Ok(a) => dns.push(a),
            Err(e) => {
                ctx.error(
                    obj,
                    &field("dns"),
                    r.dns.as_ref().and_then(sp),
                    e.to_string(),
                    "give DNS server addresses, e.g. [\"10.1.0.53\"]",
                );
                ok = false;
            }
        }
    }
    let mut subnets = Vec::new();
    for s in r.subnets.iter().flat_map(|l| l.get_ref().0.iter()) {
        match value::parse_prefix(s) {
            Ok(n) => subnets.push(n),
            Err(e) => {
                ctx.error(
                    obj,
                    &field("subnets"),
                    r.subnets.as_ref().and_then(sp),
                    e.to_string(),
                    "give the protected networks as prefixes, e.g. [\"10.1.0.0/24\"]",
                );
                ok = false;
            }
        }
    }
    for p in &pool {
        if let Some(s) = subnets.iter().find(|s| s.contains(p) || p.contains(*s)) {
            ctx.error(obj, &field("pool"), sp(pool_v), format!("the pool {p} overlaps subnet {s}, which is handed out as a network behind this gateway"), "give the clients a pool beside the protected networks");
            ok = false;
        }
        for d in dns.iter().filter(|d| p.contains(*d)) {
            ctx.error(
                obj,
                &field("dns"),
                r.dns.as_ref().and_then(sp),
                format!("DNS server {d} is inside the pool {p}, so it could be handed to a client"),
                "use a DNS server outside the pool",
            );
            ok = false;
        }
    }
    if !ok {
        return Err(());
    }
    if matches!(peer, Some(PeerAddress::Ip(_) | PeerAddress::Fqdn(_)))
        && !Ctx::flag(&g.passive_mode, false)
    {
        ctx.warn(obj, &field("pool"), sp(pool_v), "a server answers its clients' requests, but this gateway may also initiate (a static peer-address, passive-mode off), and an IKE SA it starts carries no configuration payload", "set passive-mode = true or peer-address = \"dynamic\"");
    }
    if authentication_multiple > 0 {
        ctx.warn(obj, &field("pool"), sp(pool_v), "the gateway's ike-crypto-profile re-authenticates (authentication-multiple), but an IKE SA the server starts carries no configuration payload, so its IPsec SAs would not be narrowed to the client's address", "set authentication-multiple = 0 here and re-authenticate from the clients");
    }
    Ok(Some(ConfigPayload::Serve(AddressPool {
        pool,
        reserved: Vec::new(),
        dns,
        subnets,
        required: Ctx::flag(&r.required, false),
    })))
}

/// The rules that need the rest of the file: one tunnel interface per gateway, a pool that
/// overlaps no LAN and that the proxy IDs' remote side holds; then the pool's route through
/// the tunnel interface goes into its virtual router, and the tunnel interface's own
/// address is kept out of the pool.
pub(super) fn cross_cp(
    gateways: &mut BTreeMap<String, IkeGateway>,
    tunnels: &BTreeMap<String, IpsecTunnel>,
    tunnel_interfaces: &BTreeMap<String, TunnelInterface>,
    virtual_routers: &mut BTreeMap<String, VirtualRouter>,
    raw: &RawRoot,
    ctx: &mut Ctx<'_>,
) {
    let names: Vec<String> = gateways
        .iter()
        .filter(|(_, g)| g.config_payload.is_some())
        .map(|(n, _)| n.clone())
        .collect();
    let pools: Vec<(String, IpNet)> = gateways
        .iter()
        .filter_map(|(n, g)| match &g.config_payload {
            Some(ConfigPayload::Serve(p)) => Some(p.pool.iter().map(|net| (n.clone(), *net))),
            _ => None,
        })
        .flatten()
        .collect();
    for name in names {
        let obj = ctx.obj("ike-gateway", &name);
        let span = raw
            .ike_gateway
            .as_ref()
            .and_then(|m| m.get(&name))
            .and_then(|g| g.config_payload.as_ref())
            .and_then(sp);
        let mine: Vec<&IpsecTunnel> = tunnels
            .values()
            .filter(|t| matches!(&t.keying, Keying::AutoKey { ike_gateway, .. } if *ike_gateway == name))
            .collect();
        let ifaces: BTreeSet<&str> = mine.iter().map(|t| t.tunnel_interface.as_str()).collect();
        if ifaces.len() > 1 {
            ctx.error(&obj, "config-payload", span, format!("the gateway's tunnels are on {}, but the configuration payload's addresses belong to one tunnel interface", quoted(&ifaces)), "put every ipsec-tunnel of this gateway on one tunnel interface");
            continue;
        }
        let Some(iface) = ifaces.first().and_then(|i| tunnel_interfaces.get(*i)) else {
            continue;
        };
        let Some(gw) = gateways.get_mut(&name) else {
            continue;
        };
        let proxy_ids: Vec<ProxyId> = mine.iter().flat_map(|t| t.effective_proxy_ids()).collect();
        let Some(ConfigPayload::Serve(pool)) = &mut gw.config_payload else {
            // A client: its local side is narrowed to the address it gets.
            for p in &proxy_ids {
                if let AddressSpec::Prefix(n) = p.local
                    && n.prefix_len() > 0
                {
                    ctx.warn(&obj, "config-payload", span.clone(), format!("with request = true the local side of proxy-id \"{}\" ({n}) is narrowed to the address the server assigns, which must be inside it", p.name), "leave out proxy-id, or use local = \"0.0.0.0/0\" unless the server's pool is inside it");
                }
            }
            continue;
        };
        let mut bad = false;
        for net in pool.pool.clone() {
            let lan = proxy_ids.iter().find_map(|p| match p.local {
                AddressSpec::Prefix(l)
                    if l.prefix_len() > 0 && (l.contains(&net) || net.contains(&l)) =>
                {
                    Some(format!("the local side of proxy-id \"{}\" ({l})", p.name))
                }
                _ => None,
            });
            let other_pool = pools
                .iter()
                .find(|(g, p)| *g != name && (p.contains(&net) || net.contains(p)))
                .map(|(g, p)| format!("the pool {p} of ike-gateway \"{g}\""));
            let routed = virtual_routers
                .values()
                .flat_map(|v| &v.static_routes)
                .find_map(|r| {
                    (!r.interface.starts_with("tunnel.")
                        && r.destination.prefix_len() > 0
                        && (r.destination.contains(&net) || net.contains(&r.destination)))
                    .then(|| {
                        format!(
                            "static route \"{}\" ({} via {})",
                            r.name, r.destination, r.interface
                        )
                    })
                });
            let other_iface = tunnel_interfaces
                .values()
                .filter(|t| t.name != iface.name)
                .find_map(|t| {
                    t.addresses
                        .iter()
                        .find(|a| net.contains(&a.addr()))
                        .map(|a| format!("the address {a} of {}", t.name))
                });
            if let Some(what) = lan.or(other_pool).or(routed).or(other_iface) {
                ctx.error(&obj, "config-payload.pool", span.clone(), format!("the pool {net} overlaps {what}; the clients' addresses would clash with a network of this side"), "give the clients a pool of their own, outside every LAN and route");
                bad = true;
                continue;
            }
            let held = proxy_ids.iter().any(|p| match p.remote {
                AddressSpec::Any => true,
                AddressSpec::Prefix(r) => r.contains(&net),
                AddressSpec::Range(a, b) => a <= net.network() && net.broadcast() <= b,
            });
            if !held {
                ctx.error(&obj, "config-payload.pool", span.clone(), format!("no proxy-id of the gateway's tunnels has the pool {net} inside its remote side, so a client's address would match none"), "leave out proxy-id, or give it remote = the pool (or 0.0.0.0/0)");
                bad = true;
            }
        }
        if bad {
            continue;
        }
        // The tunnel interface's own address is never handed out.
        pool.reserved = iface
            .addresses
            .iter()
            .map(IpNet::addr)
            .filter(|a| pool.pool.iter().any(|n| n.contains(a)))
            .collect();
        // The clients' addresses are reached through the tunnel interface: a route for the
        // pool, unless the interface's own prefix or a configured route already covers it.
        let Some(vr) = virtual_routers.get_mut(&iface.virtual_router) else {
            continue;
        };
        for net in &pool.pool {
            let connected = iface.addresses.iter().any(|a| a.trunc().contains(net));
            let routed = vr
                .static_routes
                .iter()
                .any(|r| r.destination == *net && r.interface == iface.name);
            if !connected && !routed {
                vr.static_routes.push(StaticRoute {
                    name: pool_route_name(&name),
                    destination: *net,
                    interface: iface.name.clone(),
                    next_hop: None,
                    metric: defaults::ROUTE_METRIC,
                });
            }
        }
    }
}
