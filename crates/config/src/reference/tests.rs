//! Tests of the configuration reference against the parser, the loader and `docs/configuration.md`.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

use super::*;
use crate::algo::{
    AddressFamily, DhGroup, EspEncryption, ExchangeMode, HashAlgorithm, IdType, IkeEncryption,
    IkeVersion, IpsecAuthentication, IpsecProtocol, MonitorAction, RuleAction, TunnelType,
};
use crate::raw::*;

/// A deserializer that only records the field list a derived `Deserialize` asks for.
struct FieldProbe;

#[derive(Debug)]
struct Fields(Vec<&'static str>);

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for Fields {}

impl de::Error for Fields {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Fields(Vec::new())
    }
}

impl<'de> de::Deserializer<'de> for FieldProbe {
    type Error = Fields;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
        Err(Fields(Vec::new()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Fields> {
        Err(Fields(fields.to_vec()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn fields_of<T: for<'de> Deserialize<'de>>() -> BTreeSet<&'static str> {
    match T::deserialize(FieldProbe) {
        Err(Fields(f)) => f.into_iter().collect(),
        Ok(_) => unreachable!("the probe never yields a value"),
    }
}

fn accepted_keys() -> Vec<(&'static str, BTreeSet<&'static str>)> {
    vec![
        ("file", fields_of::<RawRoot>()),
        ("global", fields_of::<RawGlobal>()),
        ("ike-crypto-profile", fields_of::<RawIkeProfile>()),
        ("ipsec-crypto-profile", fields_of::<RawIpsecProfile>()),
        ("ike-gateway", fields_of::<RawGateway>()),
        ("ike-gateway.certificate", fields_of::<RawCertificate>()),
        ("ike-gateway.local-id", fields_of::<RawId>()),
        ("ike-gateway.dpd", fields_of::<RawDpd>()),
        (
            "ike-gateway.config-payload",
            fields_of::<RawConfigPayload>(),
        ),
        ("tunnel-interface", fields_of::<RawTunnelInterface>()),
        ("ipsec-tunnel", fields_of::<RawIpsecTunnel>()),
        ("ipsec-tunnel.proxy-id", fields_of::<RawProxyId>()),
        (
            "ipsec-tunnel.tunnel-monitor",
            fields_of::<RawTunnelMonitor>(),
        ),
        ("ipsec-tunnel.manual-key", fields_of::<RawManualKey>()),
        ("monitor-profile", fields_of::<RawMonitorProfile>()),
        ("virtual-router", fields_of::<RawVirtualRouter>()),
        ("virtual-router.static-route", fields_of::<RawStaticRoute>()),
        ("zone", fields_of::<RawZone>()),
        ("security-rule", fields_of::<RawSecurityRule>()),
    ]
}

#[test]
fn the_table_lists_exactly_the_keys_the_parser_accepts() {
    let accepted = accepted_keys();
    let sections: BTreeSet<_> = SECTIONS.iter().map(|s| s.section).collect();
    let probed: BTreeSet<_> = accepted.iter().map(|(s, _)| *s).collect();
    assert_eq!(sections, probed, "SECTIONS and the raw structs disagree");
    for (section, keys) in &accepted {
        assert!(!keys.is_empty(), "{section}: probe found no fields");
        let documented: BTreeSet<&str> = REFERENCE
            .iter()
            .filter(|k| k.section == *section)
            .map(|k| k.key)
            .collect();
        let undocumented: Vec<_> = keys.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(keys).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "section {section}: keys the parser accepts but REFERENCE lacks: \
             {undocumented:?}; keys REFERENCE lists but the parser refuses: {unknown:?}"
        );
    }
    let mut seen = BTreeSet::new();
    for k in REFERENCE {
        assert!(
            seen.insert((k.section, k.key)),
            "{}.{} listed twice",
            k.section,
            k.key
        );
    }
}

#[test]
fn keywords_the_parser_accepts_are_documented() {
    let check = |section: &str, key: &str, names: &[&str]| {
        let doc = REFERENCE
            .iter()
            .find(|k| k.section == section && k.key == key)
            .unwrap_or_else(|| panic!("{section}.{key} missing"));
        for n in names {
            let listed = doc
                .allowed
                .split([',', ' ', '(', ')', ';'])
                .any(|w| w == *n);
            assert!(
                listed,
                "{section}.{key}: \"{n}\" is accepted but not in allowed"
            );
        }
    };
    check("ike-crypto-profile", "dh-group", DhGroup::NAMES);
    check(
        "ike-crypto-profile",
        "additional-key-exchange",
        crate::algo::AdditionalKeyExchange::NAMES,
    );
    check("ike-crypto-profile", "authentication", HashAlgorithm::NAMES);
    check("ike-crypto-profile", "encryption", IkeEncryption::NAMES);
    check("ipsec-crypto-profile", "protocol", IpsecProtocol::NAMES);
    check("ipsec-crypto-profile", "encryption", EspEncryption::NAMES);
    check(
        "ipsec-crypto-profile",
        "authentication",
        IpsecAuthentication::NAMES,
    );
    check("ipsec-crypto-profile", "dh-group", DhGroup::NAMES);
    check("ipsec-crypto-profile", "dh-group", &["no-pfs"]);
    check("ike-gateway", "version", IkeVersion::NAMES);
    check("ike-gateway", "address-family", AddressFamily::NAMES);
    check("ike-gateway", "exchange-mode", ExchangeMode::NAMES);
    check("ike-gateway.local-id", "type", IdType::NAMES);
    check("ipsec-tunnel", "type", TunnelType::NAMES);
    check(
        "ipsec-tunnel.proxy-id",
        "protocol",
        crate::value::Protocol::NAMES,
    );
    check("ipsec-tunnel.manual-key", "protocol", IpsecProtocol::NAMES);
    check(
        "ipsec-tunnel.manual-key",
        "authentication",
        IpsecAuthentication::NAMES,
    );
    check("monitor-profile", "action", MonitorAction::NAMES);
    check("security-rule", "action", RuleAction::NAMES);
    for e in EspEncryption::ALL {
        let doc = REFERENCE
            .iter()
            .find(|k| k.key == "encryption-key")
            .unwrap();
        let want = format!("{} {}", e.name(), e.manual_key_len());
        assert!(
            *e == EspEncryption::Null || doc.allowed.contains(&want),
            "encryption-key length of {e} is not documented as {want}"
        );
    }
    for h in HashAlgorithm::ALL {
        let doc = REFERENCE
            .iter()
            .find(|k| k.key == "authentication-key")
            .unwrap();
        assert!(
            doc.allowed
                .contains(&format!("{} {}", h.name(), h.key_len()))
        );
    }
}

/// A valid file per section, and where in it the section's table is.
fn base_for(section: &str) -> (String, Vec<&'static str>) {
    let base = r#"
[ike-crypto-profile.p1]
[ipsec-crypto-profile.e1]
[ike-gateway.gw1]
version = "ikev2-preferred"
local-address = "192.0.2.1"
peer-address = "192.0.2.2"
certificate = { local = "gw.pem", key = "gw.key", ca = ["ca.pem"] }
local-id = { type = "fqdn", value = "a.example.net" }
dpd = { interval = "5s" }
[tunnel-interface."tunnel.1"]
zone = "vpn"
address = "10.1.0.1/24"
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw1"
proxy-id = [{ name = "lan", local = "10.1.0.0/24", remote = "10.2.0.0/24", protocol = "tcp" }]
tunnel-monitor = { destination = "10.2.0.1" }
[ipsec-tunnel.mk]
tunnel-interface = "tunnel.1"
type = "manual-key"
manual-key = { local-spi = "0x1000", remote-spi = "0x2000", encryption = "aes-128-cbc", encryption-key = "0x000102030405060708090a0b0c0d0e0f", authentication = "sha256", authentication-key = "0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f", local-address = "192.0.2.1", peer-address = "192.0.2.3" }
[monitor-profile.m1]
[virtual-router.default]
static-route = [{ name = "r1", destination = "10.2.0.0/24", interface = "tunnel.1" }]
[zone.vpn]
[zone.trust]
interfaces = ["eth1"]
[[security-rule]]
name = "r1"
from = ["trust"]
to = ["vpn"]
action = "allow"
"#;
    let path: Vec<&'static str> = match section {
        "file" => vec![],
        "global" => vec!["global"],
        "ike-crypto-profile" => vec!["ike-crypto-profile", "p1"],
        "ipsec-crypto-profile" => vec!["ipsec-crypto-profile", "e1"],
        "ike-gateway" => vec!["ike-gateway", "gw1"],
        "ike-gateway.certificate" => vec!["ike-gateway", "gw1", "certificate"],
        "ike-gateway.local-id" => vec!["ike-gateway", "gw1", "local-id"],
        "ike-gateway.dpd" => vec!["ike-gateway", "gw1", "dpd"],
        "ike-gateway.config-payload" => {
            // An IKEv2 server: the pool the other keys go beside.
            let base = base
                .replace("version = \"ikev2-preferred\"", "version = \"ikev2\"")
                .replace("dpd = { interval = \"5s\" }", "")
                .replace(
                    "[tunnel-interface.",
                    "config-payload = { pool = \"10.9.0.0/24\" }\n[tunnel-interface.",
                )
                .replace(
                    "remote = \"10.2.0.0/24\", protocol",
                    "remote = \"any\", protocol",
                );
            return (base, vec!["ike-gateway", "gw1", "config-payload"]);
        }
        "tunnel-interface" => vec!["tunnel-interface", "tunnel.1"],
        "ipsec-tunnel" => vec!["ipsec-tunnel", "t1"],
        "ipsec-tunnel.proxy-id" => vec!["ipsec-tunnel", "t1", "proxy-id", "0"],
        "ipsec-tunnel.tunnel-monitor" => vec!["ipsec-tunnel", "t1", "tunnel-monitor"],
        "ipsec-tunnel.manual-key" => vec!["ipsec-tunnel", "mk", "manual-key"],
        "monitor-profile" => vec!["monitor-profile", "m1"],
        "virtual-router" => vec!["virtual-router", "default"],
        "virtual-router.static-route" => {
            vec!["virtual-router", "default", "static-route", "0"]
        }
        "zone" => vec!["zone", "vpn"],
        "security-rule" => vec!["security-rule", "0"],
        other => panic!("no base for section {other}"),
    };
    (base.to_owned(), path)
}

/// The keys whose example needs the base adjusted first: (section, key, keys to remove).
fn conflicts(section: &str, key: &str) -> &'static [&'static str] {
    match (section, key) {
        ("ike-gateway", "pre-shared-key") => &["certificate"],
        ("ipsec-tunnel", "manual-key") => &["ike-gateway"],
        ("ike-gateway", "config-payload") => &["version", "dpd"],
        ("ike-gateway.config-payload", "request") => &["pool"],
        _ => &[],
    }
}

fn table_at<'t>(root: &'t mut toml::Table, path: &[&str]) -> &'t mut toml::Table {
    let mut cur = root;
    for (i, p) in path.iter().enumerate() {
        let v = if let Ok(idx) = p.parse::<usize>() {
            unreachable!("index {idx} handled by the caller")
        } else {
            cur.entry((*p).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        };
        let next = path.get(i + 1).and_then(|n| n.parse::<usize>().ok());
        cur = match (v, next) {
            (toml::Value::Array(a), Some(idx)) => match &mut a[idx] {
                toml::Value::Table(t) => {
                    return table_at(t, &path[i + 2..]);
                }
                _ => panic!("not a table"),
            },
            (toml::Value::Table(t), _) => t,
            _ => panic!("path {path:?} is not a table"),
        };
    }
    cur
}

#[test]
fn every_example_value_loads() {
    for s in SECTIONS {
        let (text, _) = base_for(s.section);
        if let Err(e) = crate::load_str(&text, "base.toml") {
            panic!("the base for {} does not load: {e}", s.section);
        }
    }
    for k in REFERENCE {
        let (text, mut path) = base_for(k.section);
        if (k.section, k.key) == ("virtual-router", "interfaces")
            || (k.section, k.key) == ("virtual-router", "routing-table")
        {
            // A router of its own: `default` keeps the main table and every interface.
            path = vec!["virtual-router", "red"];
        }
        let mut root: toml::Table = toml::from_str(&text).unwrap();
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {}", k.example))
            .unwrap_or_else(|e| panic!("{}.{} example is not TOML: {e}", k.section, k.key))
            .remove("v")
            .unwrap();
        let table = table_at(&mut root, &path);
        for c in conflicts(k.section, k.key) {
            table.remove(*c);
        }
        if (k.section, k.key) == ("ipsec-tunnel", "manual-key") {
            table.insert("type".into(), toml::Value::String("manual-key".into()));
        }
        if (k.section, k.key) == ("ike-gateway", "tcp-encapsulation") {
            // IKEv2 only (the base gateway is ikev2-preferred, the default).
            table.insert("version".into(), toml::Value::String("ikev2".into()));
            table.remove("dpd");
            table.remove("exchange-mode");
        }
        if k.section == "file" {
            // Whole objects: add the example's entries next to the base's.
            match (table.get_mut(k.key), value) {
                (Some(toml::Value::Table(t)), toml::Value::Table(v)) => {
                    for (name, obj) in v {
                        t.insert(name, obj);
                    }
                }
                (Some(toml::Value::Array(a)), toml::Value::Array(v)) => a.extend(v),
                (_, v) => {
                    table.insert(k.key.to_owned(), v);
                }
            }
        } else {
            table.insert(k.key.to_owned(), value);
        }
        let edited = toml::to_string(&root).unwrap();
        if let Err(e) = crate::load_str(&edited, "example.toml") {
            panic!(
                "{}.{} = {} does not load:\n{e}\n---\n{edited}",
                k.section, k.key, k.example
            );
        }
    }
}

#[test]
fn documented_defaults_are_what_the_loader_fills_in() {
    let l = crate::load_str(
        r#"
[ike-crypto-profile.p1]
[ipsec-crypto-profile.e1]
[ike-gateway.gw1]
version = "ikev2-preferred"
peer-address = "192.0.2.2"
pre-shared-key = "a long enough key"
ike-crypto-profile = "p1"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw1"
ipsec-crypto-profile = "e1"
[monitor-profile.m1]
[virtual-router.default]
static-route = [{ name = "r1", destination = "10.2.0.0/24", interface = "tunnel.1" }]
[zone.vpn]
"#,
        "defaults.toml",
    )
    .unwrap();
    let c = &l.config;
    let doc = |section: &str, key: &str| -> &'static str {
        REFERENCE
            .iter()
            .find(|k| k.section == section && k.key == key)
            .unwrap()
            .default
    };
    let list = |v: Vec<&str>| -> String {
        format!(
            "[{}]",
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let g = &c.global;
    assert_eq!(
        doc("global", "control-socket"),
        g.control_socket.display().to_string()
    );
    assert_eq!(
        doc("global", "cookie-activation-threshold"),
        g.cookie_activation_threshold.to_string()
    );
    assert_eq!(
        doc("global", "max-half-opened-sa"),
        g.max_half_opened_sa.to_string()
    );
    assert_eq!(
        doc("global", "max-half-opened-sa-per-address"),
        g.max_half_opened_sa_per_address.to_string()
    );
    assert_eq!(
        doc("global", "nat-keepalive-interval"),
        format_duration(g.nat_keepalive_interval)
    );
    assert_eq!(
        doc("global", "fqdn-refresh"),
        format_duration(g.fqdn_refresh)
    );
    let p = &c.ike_crypto_profiles["p1"];
    assert_eq!(
        doc("ike-crypto-profile", "dh-group"),
        list(p.dh_groups.iter().map(|x| x.name()).collect())
    );
    assert_eq!(
        doc("ike-crypto-profile", "authentication"),
        list(p.authentication.iter().map(|x| x.name()).collect())
    );
    assert_eq!(
        doc("ike-crypto-profile", "encryption"),
        list(p.encryption.iter().map(|x| x.name()).collect())
    );
    assert_eq!(
        doc("ike-crypto-profile", "lifetime"),
        format_duration(p.lifetime)
    );
    assert_eq!(
        doc("ike-crypto-profile", "authentication-multiple"),
        p.authentication_multiple.to_string()
    );
    let e = &c.ipsec_crypto_profiles["e1"];
    assert_eq!(doc("ipsec-crypto-profile", "protocol"), e.protocol.name());
    assert!(
        doc("ipsec-crypto-profile", "encryption")
            .starts_with(&list(e.encryption.iter().map(|x| x.name()).collect()))
    );
    assert!(
        doc("ipsec-crypto-profile", "authentication")
            .starts_with(&list(e.authentication.iter().map(|x| x.name()).collect()))
    );
    assert_eq!(
        doc("ipsec-crypto-profile", "dh-group"),
        e.pfs.unwrap().name()
    );
    assert_eq!(
        doc("ipsec-crypto-profile", "lifetime"),
        format_duration(e.lifetime)
    );
    let gw = &c.ike_gateways["gw1"];
    assert_eq!(
        doc("ike-gateway", "address-family"),
        gw.address_family.name()
    );
    let v1 = gw.ikev1.as_ref().unwrap();
    assert_eq!(doc("ike-gateway", "exchange-mode"), v1.exchange_mode.name());
    let dpd = v1.dpd.unwrap();
    assert_eq!(
        doc("ike-gateway.dpd", "interval"),
        format_duration(dpd.interval)
    );
    assert_eq!(doc("ike-gateway.dpd", "retry"), dpd.retry.to_string());
    let v2 = gw.ikev2.unwrap();
    assert_eq!(
        doc("ike-gateway", "liveness-interval"),
        format_duration(v2.liveness_interval)
    );
    assert_eq!(
        doc("ike-gateway", "strict-cookie-validation"),
        v2.strict_cookie_validation.to_string()
    );
    assert_eq!(
        doc("ike-gateway", "nat-traversal"),
        gw.nat_traversal.to_string()
    );
    assert_eq!(
        doc("ike-gateway", "passive-mode"),
        gw.passive_mode.to_string()
    );
    assert_eq!(
        doc("ike-gateway", "fragmentation"),
        gw.fragmentation.to_string()
    );
    assert_eq!(
        doc("ike-gateway", "tcp-encapsulation"),
        format!("\"{}\"", gw.tcp_encapsulation)
    );
    assert_eq!(doc("ike-gateway", "tcp-port"), gw.tcp_port.to_string());
    let ti = &c.tunnel_interfaces["tunnel.1"];
    assert_eq!(doc("tunnel-interface", "mtu"), ti.mtu.to_string());
    assert_eq!(doc("tunnel-interface", "virtual-router"), ti.virtual_router);
    let t = &c.ipsec_tunnels["t1"];
    assert_eq!(
        doc("ipsec-tunnel", "replay-window"),
        t.replay_window.unwrap().to_string()
    );
    let m = &c.monitor_profiles["m1"];
    assert_eq!(
        doc("monitor-profile", "interval"),
        format_duration(m.interval)
    );
    assert_eq!(doc("monitor-profile", "threshold"), m.threshold.to_string());
    assert_eq!(doc("monitor-profile", "action"), m.action.name());
    let r = &c.virtual_routers["default"].static_routes[0];
    assert_eq!(
        doc("virtual-router.static-route", "metric"),
        r.metric.to_string()
    );
    // The defaulted version of a gateway, and the default profile names.
    let l2 = crate::load_str(
        "[ike-gateway.g]\npeer-address = \"192.0.2.2\"\npre-shared-key = \"a long enough key\"\n\
         [tunnel-interface.\"tunnel.1\"]\nzone = \"z\"\n[zone.z]\n\
         [ipsec-tunnel.t]\ntunnel-interface = \"tunnel.1\"\nike-gateway = \"g\"\n",
        "defaults2.toml",
    )
    .unwrap();
    let gw = &l2.config.ike_gateways["g"];
    assert_eq!(doc("ike-gateway", "version"), gw.version.name());
    assert_eq!(doc("ike-gateway", "ike-crypto-profile"), gw.crypto.name);
    let crate::Keying::AutoKey { crypto, .. } = &l2.config.ipsec_tunnels["t"].keying else {
        panic!()
    };
    assert_eq!(doc("ipsec-tunnel", "ipsec-crypto-profile"), crypto.name);
    assert_eq!(doc("ipsec-tunnel", "type"), "auto-key");
}

#[test]
fn docs_configuration_md_is_generated_from_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let want = markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/configuration.md is out of date with crates/config/src/reference/; \
         run `UPDATE_DOCS=1 cargo test -p ferrosec-config` and commit the result"
    );
}

#[test]
fn markdown_has_every_key_and_preset() {
    let md = markdown();
    for k in REFERENCE {
        assert!(
            md.contains(&format!("| `{}` |", k.key)),
            "{} missing",
            k.key
        );
    }
    for p in presets::PRESET_NAMES {
        assert!(md.contains(&format!("| {p} |")), "{p} missing");
    }
    assert!(
        md.contains("| default | aes-128-cbc, 3des | sha1 | group2 | 8h |"),
        "{md}"
    );
}
