//! IKE gateways: addresses, IDs, authentication (pre-shared key or certificate), TCP encapsulation, and what a suite requires of its keys.

use super::*;

pub(super) fn identity(
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

pub(super) fn is_hostname(s: &str) -> bool {
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

pub(super) fn gateway(
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
pub(super) fn tcp_encapsulation(
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
pub(super) fn suite_key_fits(
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
pub(super) fn ike_profile_fits(
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

pub(super) fn certificate(
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
