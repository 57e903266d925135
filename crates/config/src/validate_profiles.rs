//! IKE, IPSec and monitor profiles: their values, and the weak choices warned about.

use super::*;

pub(super) fn ike_profile(
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

pub(super) fn ipsec_profile(
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
    let addke = match &p.additional_key_exchange {
        Some(v) => ctx.keyword_list::<AdditionalKeyExchange>(obj, "additional-key-exchange", v),
        None => Some(Vec::new()),
    };
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
    // RFC 9370 §2.2.4 as strongSwan implements it: the additional key exchanges of a
    // CREATE_CHILD_SA follow its first one (the PFS exchange); without PFS none takes place.
    if let (Some(Some(k)), Some(None), Some(v)) = (
        addke.as_ref().map(|k| {
            k.iter()
                .any(|k| *k != AdditionalKeyExchange::None)
                .then_some(k)
        }),
        pfs,
        &p.additional_key_exchange,
    ) {
        ok = false;
        let names: Vec<&str> = k
            .iter()
            .filter(|k| **k != AdditionalKeyExchange::None)
            .map(|k| k.name())
            .collect();
        ctx.error(
            obj,
            "additional-key-exchange",
            sp(v),
            format!(
                "{} is set but dh-group is \"no-pfs\": the additional key exchanges of a Child SA rekey (RFC 9370 IKE_FOLLOWUP_KE) follow its PFS key exchange, so without PFS they never run",
                names.join(", ")
            ),
            format!("set dh-group (e.g. \"group19\") on ipsec-crypto-profile \"{name}\", or remove additional-key-exchange"),
        );
    }
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
        additional_key_exchange: addke?,
    })
}

/// Warnings for weak algorithms (R-CFG-3). `users` is set for a built-in preset in use.
pub(super) fn weak_ike(
    p: &IkeCryptoProfile,
    obj: &Obj,
    users: Option<&Vec<String>>,
    ctx: &mut Ctx<'_>,
) {
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

pub(super) fn weak_ipsec(
    p: &IpsecCryptoProfile,
    obj: &Obj,
    users: Option<&Vec<String>>,
    ctx: &mut Ctx<'_>,
) {
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

pub(super) fn monitor_profile(
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
