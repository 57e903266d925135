//! Every file in examples/ loads, and holds what it says it holds.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrosec_config::algo::{
    DhGroup, EspEncryption, ExchangeMode, HashAlgorithm, IdType, IkeEncryption, IkeVersion,
    IpsecAuthentication, IpsecProtocol, MonitorAction, RuleAction,
};
use ferrosec_config::value::{AddressSpec, PortRange, Protocol, Service};
use ferrosec_config::{
    Config, GatewayAuth, IkeGateway, IpsecTunnel, Keying, Loaded, PeerAddress, ZoneMatch, load_file,
};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn load(name: &str) -> Loaded {
    match load_file(&examples_dir().join(name)) {
        Ok(l) => l,
        Err(e) => panic!("{name} does not load:\n{e}"),
    }
}

/// The preset examples read their certificate files from examples/certs/ (test-only keys):
/// they load whole, credentials included.
#[test]
fn preset_examples_read_their_certificate_files() {
    for name in [
        "preset-prime-128.toml",
        "preset-prime-256.toml",
        "preset-suite-b-gcm-128.toml",
        "preset-suite-b-gcm-256.toml",
    ] {
        let l = load(name);
        let gw = only_gateway(&l.config);
        let GatewayAuth::Certificate(c) = &gw.authentication else {
            panic!("{name}: certificates expected");
        };
        assert!(c.credentials.is_some(), "{name}: the files were read");
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> AddressSpec {
    AddressSpec::parse(s).unwrap()
}

fn only_gateway(c: &Config) -> &IkeGateway {
    assert_eq!(c.ike_gateways.len(), 1);
    c.ike_gateways.values().next().unwrap()
}

fn only_tunnel(c: &Config) -> &IpsecTunnel {
    assert_eq!(c.ipsec_tunnels.len(), 1);
    c.ipsec_tunnels.values().next().unwrap()
}

fn psk(gw: &IkeGateway) -> &[u8] {
    match &gw.authentication {
        GatewayAuth::PreSharedKey(k) => k.expose(),
        GatewayAuth::Certificate(_) => panic!("{} uses certificates", gw.name),
    }
}

fn ipsec_profile_of(t: &IpsecTunnel) -> &ferrosec_config::IpsecCryptoProfile {
    match &t.keying {
        Keying::AutoKey { crypto, .. } => crypto,
        Keying::ManualKey(_) => panic!("{} is manual-key", t.name),
    }
}

#[test]
fn every_example_file_is_tested() {
    let mut found: BTreeSet<String> = BTreeSet::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".toml") {
            found.insert(name);
        }
    }
    let tested: BTreeSet<String> = [
        "appendix-a.toml",
        "site-a.toml",
        "site-b.toml",
        "strongswan-peer.toml",
        "preset-default.toml",
        "preset-suite-b-gcm-128.toml",
        "preset-suite-b-gcm-256.toml",
        "preset-prime-128.toml",
        "preset-prime-256.toml",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        found, tested,
        "add a test for every example (and list it here)"
    );
}

#[test]
fn appendix_a_is_the_spec_file_verbatim() {
    let spec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/SPEC.md"),
    );
    // shared/ sits beside the repository in CI and on developer machines; skip if it is absent.
    if let Ok(spec) = spec {
        let start = spec.find("## Appendix A").expect("SPEC has Appendix A");
        let body = &spec[start..];
        let open = body.find("```toml\n").unwrap() + "```toml\n".len();
        let close = body[open..].find("```").unwrap();
        let example = std::fs::read_to_string(examples_dir().join("appendix-a.toml")).unwrap();
        assert_eq!(example, &body[open..open + close]);
    }
}

#[test]
fn appendix_a() {
    let l = load("appendix-a.toml");
    let c = &l.config;
    assert_eq!(
        c.global.control_socket,
        Path::new("/run/ferrosec/ferrosec.sock")
    );
    assert_eq!(
        c.global.log_file.as_deref(),
        Some(Path::new("/var/log/ferrosec/system.log"))
    );
    assert_eq!(c.global.cookie_activation_threshold, 500);
    assert_eq!(c.global.max_half_opened_sa, 65535);
    assert_eq!(c.global.nat_keepalive_interval, Duration::from_secs(20));

    let ike = &c.ike_crypto_profiles["hq-ike"];
    assert_eq!(ike.dh_groups, [DhGroup::Group19, DhGroup::Group14]);
    assert_eq!(ike.authentication, [HashAlgorithm::Sha256]);
    assert_eq!(
        ike.encryption,
        [IkeEncryption::Aes256Cbc, IkeEncryption::Aes128Cbc]
    );
    assert_eq!(ike.lifetime, Duration::from_secs(8 * 3600));
    assert_eq!(ike.authentication_multiple, 0);
    assert!(!ike.builtin);

    let esp = &c.ipsec_crypto_profiles["hq-esp"];
    assert_eq!(esp.protocol, IpsecProtocol::Esp);
    assert_eq!(esp.encryption, [EspEncryption::Aes256Gcm]);
    assert_eq!(esp.authentication, [IpsecAuthentication::None]);
    assert_eq!(esp.pfs, Some(DhGroup::Group19));
    assert_eq!(esp.lifetime, Duration::from_secs(3600));
    assert_eq!(esp.lifesize, Some(50 * 1024 * 1024 * 1024));

    let gw = &c.ike_gateways["branch1"];
    assert_eq!(gw.version, IkeVersion::Ikev2);
    assert_eq!(gw.interface.as_deref(), Some("eth0"));
    assert_eq!(gw.local_address, Some(ip("198.51.100.1")));
    assert_eq!(gw.peer, PeerAddress::Ip(ip("198.51.100.2")));
    assert_eq!(psk(gw), b"correct horse battery staple");
    let lid = gw.local_id.as_ref().unwrap();
    assert_eq!(
        (lid.id_type, lid.value.as_str()),
        (IdType::Fqdn, "hq.example.net")
    );
    assert_eq!(gw.peer_id.as_ref().unwrap().value, "branch1.example.net");
    assert_eq!(gw.crypto, *ike, "the gateway holds its resolved profile");
    assert!(gw.ikev1.is_none());
    let v2 = gw.ikev2.unwrap();
    assert_eq!(v2.liveness_interval, Duration::from_secs(5));
    assert!(!v2.strict_cookie_validation);
    assert!(gw.nat_traversal && !gw.passive_mode && gw.fragmentation);

    let ti = &c.tunnel_interfaces["tunnel.1"];
    assert_eq!(
        (ti.unit, ti.zone.as_str(), ti.virtual_router.as_str()),
        (1, "vpn", "default")
    );
    assert_eq!(
        ti.addresses,
        ["169.254.10.1/30".parse::<ipnet::IpNet>().unwrap()]
    );
    assert_eq!(ti.mtu, 1400);

    let t = &c.ipsec_tunnels["to-branch1"];
    assert_eq!(t.tunnel_interface, "tunnel.1");
    assert_eq!(c.ike_gateway_of(t).unwrap().name, "branch1");
    assert_eq!(ipsec_profile_of(t), esp);
    assert_eq!(t.replay_window, Some(1024));
    assert_eq!(t.proxy_ids.len(), 2);
    let dns = &t.proxy_ids[1];
    assert_eq!(dns.name, "dns");
    assert_eq!(dns.local, net("10.1.0.53/32"));
    assert_eq!(dns.remote, net("10.3.0.0/24"));
    assert_eq!(dns.protocol, Protocol::Udp);
    assert_eq!(dns.local_port, PortRange::single(53));
    assert_eq!(dns.remote_port, PortRange::ANY);
    let mon = t.monitor.as_ref().unwrap();
    assert_eq!(
        (mon.destination, mon.source),
        (ip("10.2.0.1"), ip("10.1.0.1"))
    );
    assert_eq!(mon.profile.name, "failover");
    assert_eq!(mon.profile.action, MonitorAction::FailOver);
    assert_eq!(mon.profile.interval, Duration::from_secs(3));
    assert_eq!(mon.profile.threshold, 5);

    let routes = &c.virtual_routers["default"].static_routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0].destination,
        "10.2.0.0/24".parse::<ipnet::IpNet>().unwrap()
    );
    assert_eq!(
        (routes[0].interface.as_str(), routes[0].metric),
        ("tunnel.1", 10)
    );

    assert_eq!(c.zones["trust"].interfaces, ["eth1"]);
    assert_eq!(c.zones["vpn"].interfaces, ["tunnel.1"]);
    let r = &c.security_rules[0];
    assert_eq!(r.name, "hq-to-branch");
    assert_eq!(r.from, ZoneMatch::Zones(vec!["trust".into()]));
    assert_eq!(r.destination, [net("10.2.0.0/24")]);
    assert_eq!(r.service, [Service::Any]);
    assert_eq!(r.action, RuleAction::Allow);

    // The fail-over monitor has no backup route to fail over to: that is worth a warning.
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert_eq!(
        l.warnings[0].field.as_deref(),
        Some("tunnel-monitor.profile")
    );
}

/// Site A and site B are mirror images of each other.
#[test]
fn site_a_and_site_b_mirror_each_other() {
    let (a, b) = (load("site-a.toml"), load("site-b.toml"));
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert!(b.warnings.is_empty(), "{:?}", b.warnings);
    let (a, b) = (&a.config, &b.config);

    assert_eq!(
        a.global.control_socket,
        Path::new("/run/ferrosec/site-a.sock")
    );
    assert_eq!(
        b.global.control_socket,
        Path::new("/run/ferrosec/site-b.sock")
    );

    let (ga, gb) = (&a.ike_gateways["site-b"], &b.ike_gateways["site-a"]);
    assert_eq!(ga.local_address, Some(ip("198.51.100.1")));
    assert_eq!(gb.local_address, Some(ip("198.51.100.2")));
    assert_eq!(ga.peer, PeerAddress::Ip(gb.local_address.unwrap()));
    assert_eq!(gb.peer, PeerAddress::Ip(ga.local_address.unwrap()));
    assert_eq!(ga.version, IkeVersion::Ikev2);
    assert_eq!(gb.version, IkeVersion::Ikev2);
    assert_eq!(ga.authentication, gb.authentication, "same pre-shared key");
    assert!(psk(ga).len() >= 8);
    assert_eq!(ga.local_id, gb.peer_id);
    assert_eq!(ga.peer_id, gb.local_id);
    assert_eq!(ga.crypto, gb.crypto, "same IKE proposals");
    assert_eq!(ga.nat_traversal, gb.nat_traversal);

    let (ta, tb) = (&a.ipsec_tunnels["to-site-b"], &b.ipsec_tunnels["to-site-a"]);
    let (ea, eb) = (ipsec_profile_of(ta), ipsec_profile_of(tb));
    assert_eq!(ea, eb, "same ESP proposals");
    assert_eq!(ea.encryption, [EspEncryption::Aes256Gcm]);
    assert_eq!(ta.proxy_ids.len(), 1);
    assert_eq!(ta.proxy_ids[0].local, tb.proxy_ids[0].remote);
    assert_eq!(ta.proxy_ids[0].remote, tb.proxy_ids[0].local);
    assert_eq!(ta.proxy_ids[0].local, net("10.1.0.0/24"));
    assert_eq!(tb.proxy_ids[0].local, net("10.2.0.0/24"));
    assert_eq!(ta.tunnel_interface, "tunnel.1");
    assert_eq!(tb.tunnel_interface, "tunnel.1");

    // The monitors ping each other's LAN address, inside the proxy IDs (so that the probes
    // cross the tunnel).
    let (ma, mb) = (ta.monitor.as_ref().unwrap(), tb.monitor.as_ref().unwrap());
    assert_eq!((ma.source, ma.destination), (mb.destination, mb.source));
    assert_eq!(
        (ma.source, ma.destination),
        (ip("10.1.0.1"), ip("10.2.0.1"))
    );

    // Each routes the other's LAN into tunnel.1.
    let ra = &a.virtual_routers["default"].static_routes[0];
    let rb = &b.virtual_routers["default"].static_routes[0];
    assert_eq!(AddressSpec::Prefix(ra.destination), ta.proxy_ids[0].remote);
    assert_eq!(AddressSpec::Prefix(rb.destination), tb.proxy_ids[0].remote);
    assert_eq!(
        (ra.interface.as_str(), rb.interface.as_str()),
        ("tunnel.1", "tunnel.1")
    );

    // Zones and rules both ways.
    for c in [a, b] {
        assert_eq!(c.zone_of("tunnel.1").unwrap().name, "vpn");
        assert_eq!(c.zone_of("eth1").unwrap().name, "trust");
        let dirs: BTreeSet<(String, String)> = c
            .security_rules
            .iter()
            .filter(|r| r.action == RuleAction::Allow)
            .map(|r| match (&r.from, &r.to) {
                (ZoneMatch::Zones(f), ZoneMatch::Zones(t)) => (f.join(","), t.join(",")),
                _ => panic!("rule {} uses any", r.name),
            })
            .collect();
        let want: BTreeSet<(String, String)> = [("trust", "vpn"), ("vpn", "trust")]
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        assert_eq!(dirs, want);
    }
    assert_eq!(a.security_rules[0].source, b.security_rules[0].destination);
}

#[test]
fn strongswan_peer() {
    let l = load("strongswan-peer.toml");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    let gw = only_gateway(c);
    assert_eq!(gw.version, IkeVersion::Ikev2);
    assert_eq!(gw.crypto.encryption, [IkeEncryption::Aes256Cbc]);
    assert_eq!(gw.crypto.authentication, [HashAlgorithm::Sha256]);
    assert_eq!(gw.crypto.dh_groups, [DhGroup::Group14]);
    assert!(gw.nat_traversal);
    let t = only_tunnel(c);
    let esp = ipsec_profile_of(t);
    assert_eq!(esp.encryption, [EspEncryption::Aes256Gcm]);
    assert_eq!(esp.authentication, [IpsecAuthentication::None]);
    assert_eq!(t.tunnel_interface, "tunnel.10");
    assert_eq!(c.tunnel_interfaces["tunnel.10"].unit, 10);
    // Defaults: virtual router, route metric, protocol of the proxy ID, anti-replay.
    assert_eq!(c.tunnel_interfaces["tunnel.10"].virtual_router, "default");
    assert_eq!(c.virtual_routers["default"].static_routes[0].metric, 10);
    assert_eq!(t.proxy_ids[0].protocol, Protocol::Any);
    assert_eq!(t.replay_window, Some(1024));
    let web = &c.security_rules[1];
    assert_eq!(
        web.service,
        [
            Service::Tcp(PortRange::single(443)),
            Service::Udp(PortRange::single(53))
        ]
    );
}

#[test]
fn preset_default_is_pan_os_default_and_warns() {
    let l = load("preset-default.toml");
    let c = &l.config;
    let gw = only_gateway(c);
    assert_eq!(gw.version, IkeVersion::Ikev1);
    let v1 = gw.ikev1.as_ref().unwrap();
    assert_eq!(v1.exchange_mode, ExchangeMode::Main);
    assert_eq!(v1.dpd.unwrap().retry, 5);
    assert!(gw.crypto.builtin);
    assert_eq!(gw.crypto.name, "default");
    assert_eq!(gw.crypto.dh_groups, [DhGroup::Group2]);
    assert_eq!(
        gw.crypto.encryption,
        [IkeEncryption::Aes128Cbc, IkeEncryption::TripleDes]
    );
    assert_eq!(gw.crypto.authentication, [HashAlgorithm::Sha1]);
    let esp = ipsec_profile_of(only_tunnel(c));
    assert!(esp.builtin);
    assert_eq!(
        esp.encryption,
        [EspEncryption::Aes128Cbc, EspEncryption::TripleDes]
    );
    assert_eq!(esp.pfs, Some(DhGroup::Group2));
    // The presets in use are listed in the maps.
    assert!(c.ike_crypto_profiles["default"].builtin);
    assert!(c.ipsec_crypto_profiles["default"].builtin);
    // 3des and group2 warn, for both profiles, naming the preset and who uses it.
    let ike_warns: Vec<_> = l
        .warnings
        .iter()
        .filter(|w| w.kind == "ike-crypto-profile")
        .collect();
    let esp_warns: Vec<_> = l
        .warnings
        .iter()
        .filter(|w| w.kind == "ipsec-crypto-profile")
        .collect();
    for (list, user) in [
        (&ike_warns, "ike-gateway \"peer\""),
        (&esp_warns, "ipsec-tunnel \"to-peer\""),
    ] {
        let fields: BTreeSet<_> = list.iter().map(|w| w.field.as_deref().unwrap()).collect();
        assert_eq!(fields, ["dh-group", "encryption"].into_iter().collect());
        assert!(list.iter().all(|w| w.name.as_deref() == Some("default")));
        assert!(list.iter().all(|w| w.message.contains(user)), "{list:?}");
    }
    // The zone "vpn" lists no interfaces; tunnel.1 joins it through its zone key.
    assert_eq!(c.zones["vpn"].interfaces, ["tunnel.1"]);
}

fn check_suite(
    file: &str,
    preset: &str,
    version: IkeVersion,
    ike: (IkeEncryption, HashAlgorithm, DhGroup),
    esp: EspEncryption,
) {
    let l = load(file);
    assert!(l.warnings.is_empty(), "{file}: {:?}", l.warnings);
    let c = &l.config;
    let gw = only_gateway(c);
    assert_eq!(gw.version, version, "{file}");
    assert_eq!(gw.crypto.name, preset);
    assert!(gw.crypto.builtin);
    assert_eq!(gw.crypto.encryption, [ike.0]);
    assert_eq!(gw.crypto.authentication, [ike.1]);
    assert_eq!(gw.crypto.dh_groups, [ike.2]);
    assert!(
        matches!(gw.authentication, GatewayAuth::Certificate(_)),
        "{file}: suites use ECDSA certificates"
    );
    let p = ipsec_profile_of(only_tunnel(c));
    assert_eq!(p.name, preset);
    assert_eq!(p.encryption, [esp]);
    assert_eq!(p.authentication, [IpsecAuthentication::None]);
    assert_eq!(p.pfs, Some(ike.2));
}

#[test]
fn preset_suite_b_gcm_128() {
    check_suite(
        "preset-suite-b-gcm-128.toml",
        "Suite-B-GCM-128",
        IkeVersion::Ikev2Preferred,
        (
            IkeEncryption::Aes128Cbc,
            HashAlgorithm::Sha256,
            DhGroup::Group19,
        ),
        EspEncryption::Aes128Gcm,
    );
    let c = load("preset-suite-b-gcm-128.toml").config;
    let gw = only_gateway(&c);
    assert_eq!(gw.peer_id.as_ref().unwrap().id_type, IdType::Dn);
    // load_file resolves the paths against the file's directory.
    let GatewayAuth::Certificate(cert) = &gw.authentication else {
        unreachable!()
    };
    assert_eq!(cert.local, examples_dir().join("certs/gw-p256.pem"));
    assert_eq!(cert.ca, [examples_dir().join("certs/ca-p256.pem")]);
    let creds = cert.credentials.as_ref().expect("read");
    assert!(format!("{creds:?}").contains("gw.example.net"), "{creds:?}");
}

#[test]
fn preset_suite_b_gcm_256() {
    check_suite(
        "preset-suite-b-gcm-256.toml",
        "Suite-B-GCM-256",
        IkeVersion::Ikev2,
        (
            IkeEncryption::Aes256Cbc,
            HashAlgorithm::Sha384,
            DhGroup::Group20,
        ),
        EspEncryption::Aes256Gcm,
    );
}

#[test]
fn preset_prime_128() {
    check_suite(
        "preset-prime-128.toml",
        "PRIME-128",
        IkeVersion::Ikev2,
        (
            IkeEncryption::Aes128Gcm,
            HashAlgorithm::Sha256,
            DhGroup::Group19,
        ),
        EspEncryption::Aes128Gcm,
    );
}

#[test]
fn preset_prime_256() {
    check_suite(
        "preset-prime-256.toml",
        "PRIME-256",
        IkeVersion::Ikev2,
        (
            IkeEncryption::Aes256Gcm,
            HashAlgorithm::Sha384,
            DhGroup::Group20,
        ),
        EspEncryption::Aes256Gcm,
    );
    let c = load("preset-prime-256.toml").config;
    let GatewayAuth::Certificate(cert) = &only_gateway(&c).authentication else {
        unreachable!()
    };
    assert_eq!(
        cert.hash_and_url.as_deref(),
        Some("http://pki.example.net/gw-p384.der")
    );
}

#[test]
fn summaries_show_references_and_never_the_key() {
    for (file, key, chain) in [
        (
            "site-a.toml",
            "ferrosec demo key - change me",
            "to-site-b: tunnel.1 → gateway site-b → profile demo-ike",
        ),
        (
            "appendix-a.toml",
            "correct horse battery staple",
            "to-branch1: tunnel.1 → gateway branch1 → profile hq-ike",
        ),
    ] {
        let l = load(file);
        let text = l.config.summary().to_string();
        assert!(text.contains(chain), "{file}:\n{text}");
        assert!(text.contains("auth pre-shared-key"), "{text}");
        assert!(!text.contains(key), "{file}: the summary shows the key");
        let json = serde_json::to_string(&l.config.summary()).unwrap();
        assert!(
            !json.contains(key),
            "{file}: the JSON summary shows the key"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["ike_gateways"][0]["authentication"], "pre-shared-key");
        assert!(
            !format!("{:?}", l.config).contains(key),
            "{file}: Debug shows the key"
        );
    }
}
