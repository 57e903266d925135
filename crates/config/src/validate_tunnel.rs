//! IPsec tunnels: proxy IDs, tunnel monitors, manual keys, and the rules across tunnels.

use super::*;

pub(super) struct TunnelEnv<'e> {
    pub(super) gateways: &'e BTreeMap<String, IkeGateway>,
    pub(super) known_gateways: &'e BTreeSet<&'e String>,
    pub(super) ipsec_profiles: &'e BTreeMap<String, IpsecCryptoProfile>,
    pub(super) monitor_profiles: &'e BTreeMap<String, MonitorProfile>,
    pub(super) tunnel_interfaces: &'e BTreeMap<String, TunnelInterface>,
    pub(super) raw_tunnel_interfaces: Option<&'e BTreeMap<String, RawTunnelInterface>>,
}

pub(super) fn ipsec_tunnel(
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
pub(super) fn ipsec_profile_fits(
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
    if g.version == IkeVersion::Ikev1 && p.has_additional_key_exchange() {
        ok = false;
        ctx.error(obj, "ipsec-crypto-profile", span.clone(), format!("ipsec-crypto-profile \"{}\" sets additional-key-exchange (ML-KEM, RFC 9370 IKE_FOLLOWUP_KE), which needs IKEv2, but ike-gateway \"{}\" is ikev1", p.name, g.name), format!("remove additional-key-exchange from \"{}\", use another profile, or set the gateway's version to ikev2", p.name));
    } else if g.version == IkeVersion::Ikev2Preferred
        && p.has_additional_key_exchange()
        && !p
            .additional_key_exchange
            .contains(&crate::algo::AdditionalKeyExchange::None)
    {
        ctx.warn(obj, "ipsec-crypto-profile", span.clone(), format!("ipsec-crypto-profile \"{}\" requires an additional key exchange (ML-KEM), but ike-gateway \"{}\" may fall back to IKEv1, whose quick mode has none: Child SAs made over IKEv1 run without it", p.name, g.name), "add \"none\" to additional-key-exchange to say so, or set the gateway's version to ikev2");
    }
    if p.protocol == IpsecProtocol::Ah && g.tcp_encapsulation != TcpEncapsulation::No {
        ok = false;
        ctx.error(obj, "ipsec-crypto-profile", span, format!("ipsec-crypto-profile \"{}\" uses AH, which TCP encapsulation cannot carry (RFC 9329 frames ESP only), but ike-gateway \"{}\" has tcp-encapsulation = \"{}\"", p.name, g.name, g.tcp_encapsulation), "use an ESP profile for this tunnel, or remove tcp-encapsulation from the gateway");
    } else if p.protocol == IpsecProtocol::Ah && g.nat_traversal {
        ctx.warn(obj, "ipsec-crypto-profile", span, format!("ipsec-crypto-profile \"{}\" uses AH, which cannot cross NAT, but ike-gateway \"{}\" has nat-traversal on", p.name, g.name), "use ESP if there is NAT between the peers, or turn nat-traversal off");
    }
    ok
}

pub(super) fn same_selectors(a: &ProxyId, b: &ProxyId) -> bool {
    a.local == b.local
        && a.remote == b.remote
        && a.protocol == b.protocol
        && a.local_port == b.local_port
        && a.remote_port == b.remote_port
}

pub(super) fn proxy_id(
    obj: &Obj,
    index: usize,
    p: &Sp<RawProxyId>,
    ctx: &mut Ctx<'_>,
) -> Option<ProxyId> {
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

pub(super) fn tunnel_monitor(
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

pub(super) fn manual_key(obj: &Obj, m: &Sp<RawManualKey>, ctx: &mut Ctx<'_>) -> Option<ManualKey> {
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
pub(super) fn cross_tunnel_rules(
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
