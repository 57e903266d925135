//! One test per validation rule: each breaks a valid file in one way and checks that the error
//! names the object, the field, what is wrong and gives a fix (and a position in the file).

mod common;
use common::*;
use ferrosec_config::{ConfigError, Diagnostic, Loaded, load_str};

#[test]
fn base_is_valid_and_clean() {
    let l = ok(&base());
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

// --- references --------------------------------------------------------------------------

#[test]
fn dangling_gateway_names_both_objects() {
    let t = edit(
        &base(),
        "ike-gateway = \"gw1\"",
        "ike-gateway = \"branch9\"",
    );
    let d = assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "ike-gateway",
        "ike-gateway \"branch9\", which is not defined",
    );
    assert!(d.fix.unwrap().contains("[ike-gateway.branch9]"));
    // Line of the reference.
    assert_eq!(d.position.unwrap().line, 24);
}

#[test]
fn dangling_profiles_interfaces_zones_routers_monitors() {
    let b = base();
    let t = edit(
        &b,
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"p9\"",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "ike-crypto-profile",
        "ike-crypto-profile \"p9\", which is not defined",
    );
    let t = edit(
        &b,
        "ipsec-crypto-profile = \"e1\"",
        "ipsec-crypto-profile = \"e9\"",
    );
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "ipsec-crypto-profile",
        "ipsec-crypto-profile \"e9\"",
    );
    let t = edit(
        &b,
        "tunnel-interface = \"tunnel.1\"",
        "tunnel-interface = \"tunnel.7\"",
    );
    let d = assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "tunnel-interface",
        "tunnel-interface \"tunnel.7\"",
    );
    assert!(d.fix.unwrap().contains("[tunnel-interface.\"tunnel.7\"]"));
    let t = edit(&b, "zone = \"vpn\"", "zone = \"dmz\"");
    assert_error(
        &t,
        "tunnel-interface",
        Some("tunnel.1"),
        "zone",
        "zone \"dmz\", which is not defined",
    );
    let t = add(
        &b,
        "[tunnel-interface.\"tunnel.1\"]",
        "virtual-router = \"vr9\"",
    );
    assert_error(
        &t,
        "tunnel-interface",
        Some("tunnel.1"),
        "virtual-router",
        "virtual-router \"vr9\"",
    );
    let t = add(
        &b,
        "[ipsec-tunnel.t1]",
        "tunnel-monitor = { destination = \"169.254.0.2\", profile = \"mon9\" }",
    );
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "tunnel-monitor.profile",
        "monitor-profile \"mon9\"",
    );
    let t = edit(&b, "to = [\"vpn\"]", "to = [\"vnp\"]");
    assert_error(
        &t,
        "security-rule",
        Some("out"),
        "to",
        "zone \"vnp\", which is not defined",
    );
}

// --- crypto profiles --------------------------------------------------------------------

#[test]
fn authentication_none_needs_an_aead_cipher() {
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]",
        "encryption = [\"aes-256-cbc\"]",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "authentication",
        "only with an AEAD cipher",
    );
    // GCM with none, CCM with none, and a mixed list with a hash for the CBC cipher are fine.
    ok(&edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]",
        "encryption = [\"aes-128-ccm\"]",
    ));
    let mixed = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]",
        "encryption = [\"aes-256-gcm\", \"aes-256-cbc\"]",
    );
    ok(&edit(
        &mixed,
        "authentication = [\"none\"]",
        "authentication = [\"none\", \"sha256\"]",
    ));
    // null with none protects nothing.
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]",
        "encryption = [\"null\"]",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "authentication",
        "neither encrypted nor authenticated",
    );
}

#[test]
fn ah_takes_no_encryption_and_needs_a_hash() {
    let t = add(&base(), "[ipsec-crypto-profile.e1]", "protocol = \"ah\"");
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "encryption",
        "ESP only",
    );
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]\nauthentication = [\"none\"]",
        "protocol = \"ah\"\nauthentication = [\"none\"]",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "authentication",
        "protect nothing",
    );
}

#[test]
fn ah_with_nat_traversal_warns() {
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]\nauthentication = [\"none\"]",
        "protocol = \"ah\"\nauthentication = [\"sha256\"]",
    );
    assert!(ok(&t).warnings.is_empty());
    let t = add(&t, "[ike-gateway.gw1]", "nat-traversal = true");
    assert_warning(
        &ok(&t),
        "ipsec-tunnel",
        "t1",
        "ipsec-crypto-profile",
        "AH, which cannot cross NAT",
    );
}

#[test]
fn weak_algorithms_warn() {
    let t = edit(
        &base(),
        "dh-group = [\"group19\"]",
        "dh-group = [\"group1\", \"group5\"]",
    );
    let t = edit(
        &t,
        "authentication = [\"sha256\"]",
        "authentication = [\"md5\"]",
    );
    let t = edit(
        &t,
        "encryption = [\"aes-256-cbc\"]",
        "encryption = [\"des\", \"3des\"]",
    );
    let t = edit(&t, "dh-group = \"group19\"", "dh-group = \"group2\"");
    let l = ok(&t);
    assert_warning(&l, "ike-crypto-profile", "p1", "dh-group", "group1, group5");
    assert_warning(&l, "ike-crypto-profile", "p1", "authentication", "md5");
    assert_warning(&l, "ike-crypto-profile", "p1", "encryption", "des, 3des");
    assert_warning(&l, "ipsec-crypto-profile", "e1", "dh-group", "group2");
    assert_eq!(l.warnings.len(), 4, "{:#?}", l.warnings);
}

#[test]
fn unknown_algorithm_lists_the_allowed_ones() {
    let t = edit(
        &base(),
        "encryption = [\"aes-256-cbc\"]",
        "encryption = [\"aes256\"]",
    );
    let d = assert_error(
        &t,
        "ike-crypto-profile",
        Some("p1"),
        "encryption",
        "unknown value \"aes256\"",
    );
    assert!(d.fix.unwrap().contains("aes-256-cbc"));
}

#[test]
fn authentication_multiple_range() {
    let t = add(
        &base(),
        "[ike-crypto-profile.p1]",
        "authentication-multiple = 51",
    );
    assert_error(
        &t,
        "ike-crypto-profile",
        Some("p1"),
        "authentication-multiple",
        "51 is out of range",
    );
    let l = ok(&add(
        &base(),
        "[ike-crypto-profile.p1]",
        "authentication-multiple = 50",
    ));
    let p = &l.config.ike_crypto_profiles["p1"];
    assert_eq!(p.reauthentication_interval(), Some(p.lifetime * 50));
}

#[test]
fn lifetimes_and_sizes_are_checked() {
    let t = add(&base(), "[ike-crypto-profile.p1]", "lifetime = \"1m\"");
    assert_error(
        &t,
        "ike-crypto-profile",
        Some("p1"),
        "lifetime",
        "out of range",
    );
    let t = add(
        &base(),
        "[ipsec-crypto-profile.e1]",
        "lifetime = \"8 hours\"",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "lifetime",
        "unknown duration unit",
    );
    let t = add(&base(), "[ipsec-crypto-profile.e1]", "lifesize = \"50XB\"");
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "lifesize",
        "unknown size unit",
    );
}

#[test]
fn presets_can_be_used_but_suites_not_redefined() {
    let t = edit(
        &base(),
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"Suite-B-GCM-256\"",
    );
    let l = ok(&t);
    assert_eq!(l.config.ike_gateways["gw1"].crypto.name, "Suite-B-GCM-256");
    let t = edit(
        &base(),
        "[ike-crypto-profile.p1]",
        "[ike-crypto-profile.PRIME-128]",
    );
    let t = edit(
        &t,
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"PRIME-128\"",
    );
    assert_error(
        &t,
        "ike-crypto-profile",
        Some("PRIME-128"),
        "name",
        "built-in preset and cannot be redefined",
    );
    // `default` may be redefined: the file's definition wins and does not warn.
    let t = edit(
        &base(),
        "[ike-crypto-profile.p1]",
        "[ike-crypto-profile.default]",
    );
    let t = edit(
        &t,
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"default\"",
    );
    let l = ok(&t);
    let p = &l.config.ike_gateways["gw1"].crypto;
    assert!(!p.builtin);
    assert_eq!(
        p.encryption,
        [ferrosec_config::algo::IkeEncryption::Aes256Cbc]
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn built_in_default_warns_when_used() {
    let t = edit(&base(), "ike-crypto-profile = \"p1\"\n", "");
    let l = ok(&t);
    assert!(l.config.ike_gateways["gw1"].crypto.builtin);
    assert_warning(&l, "ike-crypto-profile", "default", "encryption", "3des");
    assert_warning(&l, "ike-crypto-profile", "default", "dh-group", "group2");
}

#[test]
fn prime_is_ikev2_only() {
    for version in ["ikev1", "ikev2-preferred"] {
        let t = edit(
            &base(),
            "version = \"ikev2\"",
            &format!("version = \"{version}\""),
        );
        let t = edit(
            &t,
            "ike-crypto-profile = \"p1\"",
            "ike-crypto-profile = \"PRIME-256\"",
        );
        assert_error(
            &t,
            "ike-gateway",
            Some("gw1"),
            "ike-crypto-profile",
            "IKEv2 only",
        );
        let t = edit(
            &base(),
            "version = \"ikev2\"",
            &format!("version = \"{version}\""),
        );
        let t = edit(
            &t,
            "ipsec-crypto-profile = \"e1\"",
            "ipsec-crypto-profile = \"PRIME-128\"",
        );
        assert_error(
            &t,
            "ipsec-tunnel",
            Some("t1"),
            "ipsec-crypto-profile",
            "IKEv2 only",
        );
    }
    // Suite B works with IKEv1.
    let t = edit(&base(), "version = \"ikev2\"", "version = \"ikev1\"");
    ok(&edit(
        &t,
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"Suite-B-GCM-128\"",
    ));
}

#[test]
fn ike_gcm_and_curve25519_need_ikev2() {
    let v1 = edit(&base(), "version = \"ikev2\"", "version = \"ikev1\"");
    let t = edit(
        &v1,
        "encryption = [\"aes-256-cbc\"]",
        "encryption = [\"aes-256-gcm\"]",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "ike-crypto-profile",
        "IKEv1 does not support",
    );
    let t = edit(&v1, "dh-group = [\"group19\"]", "dh-group = [\"group31\"]");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "ike-crypto-profile",
        "group31",
    );
}

// --- gateways -----------------------------------------------------------------------------

#[test]
fn ikev1_keys_on_an_ikev2_gateway() {
    let t = add(&base(), "[ike-gateway.gw1]", "exchange-mode = \"main\"");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "exchange-mode",
        "IKEv1 setting",
    );
    let t = add(
        &base(),
        "[ike-gateway.gw1]",
        "dpd = { interval = \"5s\", retry = 5 }",
    );
    assert_error(&t, "ike-gateway", Some("gw1"), "dpd", "IKEv1 setting");
    // Allowed with ikev2-preferred.
    let t = edit(&t, "version = \"ikev2\"", "version = \"ikev2-preferred\"");
    let l = ok(&t);
    assert!(l.config.ike_gateways["gw1"].ikev1.is_some());
    assert!(l.config.ike_gateways["gw1"].ikev2.is_some());
}

#[test]
fn ikev2_keys_on_an_ikev1_gateway() {
    let v1 = edit(&base(), "version = \"ikev2\"", "version = \"ikev1\"");
    ok(&v1);
    let t = add(&v1, "[ike-gateway.gw1]", "liveness-interval = \"5s\"");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "liveness-interval",
        "IKEv2 setting",
    );
    let t = add(&v1, "[ike-gateway.gw1]", "strict-cookie-validation = true");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "strict-cookie-validation",
        "IKEv2 setting",
    );
    let t = add(
        &v1,
        "[ike-crypto-profile.p1]",
        "authentication-multiple = 3",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "ike-crypto-profile",
        "authentication-multiple = 3",
    );
    let t = add(
        &v1,
        "[ike-gateway.gw1]",
        "certificate = { local = \"a.pem\", key = \"a.key\", ca = [\"ca.pem\"], hash-and-url = \"http://x.example/a.der\" }",
    );
    let t = edit(&t, &format!("pre-shared-key = \"{PSK}\"\n"), "");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "certificate.hash-and-url",
        "IKEv2 feature",
    );
    // Fetching the peer's hash-and-URL certificate is IKEv2 only too.
    let t = add(
        &v1,
        "[ike-gateway.gw1]",
        "certificate = { local = \"a.pem\", key = \"a.key\", ca = [\"ca.pem\"], hash-and-url-fetch = true }",
    );
    let t = edit(&t, &format!("pre-shared-key = \"{PSK}\"\n"), "");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "certificate.hash-and-url-fetch",
        "IKEv2 feature",
    );
    // So is fetching CRLs from distribution points.
    let t = add(
        &v1,
        "[ike-gateway.gw1]",
        "certificate = { local = \"a.pem\", key = \"a.key\", ca = [\"ca.pem\"], crl-fetch = true }",
    );
    let t = edit(&t, &format!("pre-shared-key = \"{PSK}\"\n"), "");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "certificate.crl-fetch",
        "served over IKEv2",
    );
}

#[test]
fn short_pre_shared_key() {
    let t = edit(
        &base(),
        &format!("pre-shared-key = \"{PSK}\""),
        "pre-shared-key = \"s3cr3t!\"",
    );
    let d = assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "pre-shared-key",
        "7 characters long",
    );
    assert!(!d.to_string().contains("s3cr3t!"), "{d}");
    ok(&edit(
        &base(),
        &format!("pre-shared-key = \"{PSK}\""),
        "pre-shared-key = \"8chars!!\"",
    ));
}

#[test]
fn psk_and_certificate_both_or_neither() {
    let cert = "certificate = { local = \"a.pem\", key = \"a.key\", ca = [\"ca.pem\"] }";
    let t = add(&base(), "[ike-gateway.gw1]", cert);
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "certificate",
        "both pre-shared-key and certificate",
    );
    let none = edit(&base(), &format!("pre-shared-key = \"{PSK}\"\n"), "");
    assert_error(
        &none,
        "ike-gateway",
        Some("gw1"),
        "pre-shared-key",
        "neither pre-shared-key nor certificate",
    );
    let c = ok(&add(&none, "[ike-gateway.gw1]", cert));
    assert!(matches!(
        c.config.ike_gateways["gw1"].authentication,
        ferrosec_config::GatewayAuth::Certificate(_)
    ));
    let t = add(
        &none,
        "[ike-gateway.gw1]",
        "certificate = { local = \"a.pem\", key = \"a.key\" }",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "certificate.ca",
        "no trusted CA",
    );
}

#[test]
fn address_family_mismatch() {
    let t = edit(
        &base(),
        "peer-address = \"192.0.2.2\"",
        "peer-address = \"2001:db8::2\"",
    );
    let d = assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "peer-address",
        "2001:db8::2",
    );
    assert!(d.message.contains("ipv4"), "{d}");
    let t = add(&base(), "[ike-gateway.gw1]", "address-family = \"ipv6\"");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "local-address",
        "is not an ipv6 address",
    );
    let v6 = edit(
        &base(),
        "local-address = \"192.0.2.1\"",
        "local-address = \"2001:db8::1\"",
    );
    let v6 = edit(
        &v6,
        "peer-address = \"192.0.2.2\"",
        "peer-address = \"2001:db8::2\"",
    );
    ok(&add(&v6, "[ike-gateway.gw1]", "address-family = \"ipv6\""));
}

#[test]
fn identities_are_checked_against_their_type() {
    let t = add(
        &base(),
        "[ike-gateway.gw1]",
        "local-id = { type = \"ipaddr\", value = \"hq.example.net\" }",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "local-id.value",
        "not an IP address",
    );
    let t = add(
        &base(),
        "[ike-gateway.gw1]",
        "peer-id = { type = \"ufqdn\", value = \"nobody\" }",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "peer-id.value",
        "user@domain",
    );
    let t = add(
        &base(),
        "[ike-gateway.gw1]",
        "peer-id = { type = \"email\", value = \"a@b.c\" }",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "peer-id.type",
        "unknown value \"email\"",
    );
}

#[test]
fn peer_address_forms() {
    let l = ok(&edit(
        &base(),
        "peer-address = \"192.0.2.2\"",
        "peer-address = \"branch.example.net\"",
    ));
    assert_eq!(
        l.config.ike_gateways["gw1"].peer,
        ferrosec_config::PeerAddress::Fqdn("branch.example.net".into())
    );
    let l = ok(&edit(
        &base(),
        "peer-address = \"192.0.2.2\"",
        "peer-address = \"dynamic\"",
    ));
    assert!(!l.config.ike_gateways["gw1"].may_initiate());
    let t = edit(
        &base(),
        "peer-address = \"192.0.2.2\"",
        "peer-address = \"not an address!\"",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "peer-address",
        "not an IP address, a domain name",
    );
}

#[test]
fn aggressive_mode_with_several_groups_warns() {
    let t = edit(&base(), "version = \"ikev2\"", "version = \"ikev1\"");
    let t = add(&t, "[ike-gateway.gw1]", "exchange-mode = \"aggressive\"");
    let t = edit(
        &t,
        "dh-group = [\"group19\"]",
        "dh-group = [\"group19\", \"group14\"]",
    );
    let l = ok(&t);
    assert_warning(
        &l,
        "ike-gateway",
        "gw1",
        "exchange-mode",
        "cannot negotiate the DH group",
    );
    assert_warning(
        &l,
        "ike-gateway",
        "gw1",
        "exchange-mode",
        "offline guessing",
    );
}

#[test]
fn unused_gateway_warns() {
    let t = add(&base(), "[ike-gateway.gw1]", "");
    let t = format!(
        "{t}\n[ike-gateway.gw2]\npeer-address = \"192.0.2.3\"\npre-shared-key = \"{PSK}\"\nike-crypto-profile = \"p1\"\n"
    );
    assert_warning(
        &ok(&t),
        "ike-gateway",
        "gw2",
        "name",
        "no ipsec-tunnel uses this gateway",
    );
}

// --- global -------------------------------------------------------------------------------

#[test]
fn cookie_threshold_below_max_half_open() {
    let t = format!(
        "[global]\ncookie-activation-threshold = 1000\nmax-half-opened-sa = 1000\n{}",
        base()
    );
    let d = assert_error(
        &t,
        "global",
        None,
        "cookie-activation-threshold",
        "not lower than max-half-opened-sa",
    );
    assert_eq!(d.position.unwrap().line, 2);
    let l = ok(&format!(
        "[global]\ncookie-activation-threshold = 0\nmax-half-opened-sa = 1000\n{}",
        base()
    ));
    assert_eq!(l.config.global.cookie_activation_threshold, 0);
}

// --- tunnels ------------------------------------------------------------------------------

#[test]
fn auto_key_without_gateway() {
    let t = edit(&base(), "ike-gateway = \"gw1\"\n", "");
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "ike-gateway",
        "needs an IKE gateway",
    );
}

#[test]
fn at_most_250_proxy_ids_per_tunnel_interface() {
    let ids = |from: usize, n: usize| -> String {
        (from..from + n)
            .map(|i| {
                format!(
                    "  {{ name = \"p{i}\", local = \"10.1.{}.{}/32\", remote = \"10.2.0.0/24\" }},",
                    i / 250,
                    i % 250
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // 200 + 50 on two tunnels of tunnel.1: fine; 200 + 51: one too many.
    let two = |second: usize| {
        let t = add(
            &base(),
            "[ipsec-tunnel.t1]",
            &format!("proxy-id = [\n{}\n]", ids(0, 200)),
        );
        format!(
            "{t}\n[ipsec-tunnel.t2]\ntunnel-interface = \"tunnel.1\"\nike-gateway = \"gw1\"\nproxy-id = [\n{}\n]\n",
            ids(1000, second)
        )
    };
    let l = ok(&two(50));
    assert_eq!(l.config.ipsec_tunnels["t2"].proxy_ids.len(), 50);
    assert_error(
        &two(51),
        "ipsec-tunnel",
        Some("t2"),
        "proxy-id",
        "251 proxy IDs",
    );
}

#[test]
fn proxy_id_names_unique_in_a_tunnel() {
    let t = add(
        &base(),
        "[ipsec-tunnel.t1]",
        "proxy-id = [\n { name = \"lan\", local = \"10.1.0.0/24\", remote = \"10.2.0.0/24\" },\n { name = \"lan\", local = \"10.1.1.0/24\", remote = \"10.2.0.0/24\" },\n]",
    );
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "proxy-id[2].name",
        "used twice",
    );
}

#[test]
fn proxy_id_values() {
    let p = |s: &str| {
        add(
            &base(),
            "[ipsec-tunnel.t1]",
            &format!("proxy-id = [ {{ name = \"x\", {s} }} ]"),
        )
    };
    assert_error(
        &p("local = \"10.1.0.0/24\", remote = \"2001:db8::/32\""),
        "ipsec-tunnel",
        Some("t1"),
        "proxy-id[1].remote",
        "different address families",
    );
    assert_error(
        &p("local = \"10.1.0.0/24\", remote = \"10.2.0.0/24\", remote-port = 80"),
        "ipsec-tunnel",
        Some("t1"),
        "proxy-id[1].remote-port",
        "protocol is any",
    );
    assert_error(
        &p("local = \"10.1.0.1/24\", remote = \"10.2.0.0/24\""),
        "ipsec-tunnel",
        Some("t1"),
        "proxy-id[1].local",
        "host bits",
    );
    assert_error(
        &p("local = \"10.1.0.0/24\", remote = \"10.2.0.0/24\", protocol = 300"),
        "ipsec-tunnel",
        Some("t1"),
        "proxy-id[1].protocol",
        "not a protocol",
    );
    assert_error(
        &p("remote = \"10.2.0.0/24\""),
        "ipsec-tunnel",
        Some("t1"),
        "proxy-id[1].local",
        "required",
    );
    let l = ok(&p(
        "local = \"10.1.0.1-10.1.0.9\", remote = \"10.2.0.0/24\", protocol = 6, remote-port = \"8000-8080\"",
    ));
    let pid = &l.config.ipsec_tunnels["t1"].proxy_ids[0];
    assert_eq!(pid.protocol, ferrosec_config::value::Protocol::Tcp);
    assert_eq!(
        pid.remote_port,
        ferrosec_config::value::PortRange {
            start: 8000,
            end: 8080
        }
    );
}

#[test]
fn no_proxy_id_means_everything_both_ways() {
    let l = ok(&base());
    let t = &l.config.ipsec_tunnels["t1"];
    assert!(t.proxy_ids.is_empty());
    let eff = t.effective_proxy_ids();
    let shown: Vec<String> = eff
        .iter()
        .map(|p| format!("{} {}", p.local, p.remote))
        .collect();
    assert_eq!(shown, ["0.0.0.0/0 0.0.0.0/0", "::/0 ::/0"]);
}

#[test]
fn duplicate_proxy_ids_on_one_gateway() {
    let pid =
        "proxy-id = [ { name = \"lan\", local = \"10.1.0.0/24\", remote = \"10.2.0.0/24\" } ]";
    let t = add(&base(), "[ipsec-tunnel.t1]", pid);
    let t = format!(
        "{t}\n[ipsec-tunnel.t2]\ntunnel-interface = \"tunnel.1\"\nike-gateway = \"gw1\"\n{pid}\n"
    );
    assert_error(&t, "ipsec-tunnel", Some("t2"), "proxy-id", "same selectors");
}

#[test]
fn tunnel_monitor_needs_a_source() {
    let t = add(
        &base(),
        "[ipsec-tunnel.t1]",
        "tunnel-monitor = { destination = \"10.2.0.1\" }",
    );
    let l = ok(&t); // the tunnel interface's address is the source
    assert_eq!(
        l.config.ipsec_tunnels["t1"]
            .monitor
            .as_ref()
            .unwrap()
            .source
            .to_string(),
        "169.254.0.1"
    );
    assert_eq!(l.config.monitor_profiles["default"].threshold, 5);
    let t = edit(&t, "address = \"169.254.0.1/30\"\n", "");
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "tunnel-monitor.source",
        "no source address",
    );
}

#[test]
fn manual_key_rules() {
    let mk = |fields: &str| {
        let t = edit(
            &base(),
            "ike-gateway = \"gw1\"\nipsec-crypto-profile = \"e1\"",
            &format!("type = \"manual-key\"\nmanual-key = {{ {fields} }}"),
        );
        // The gateway is now unused: that only warns.
        t
    };
    let good = "local-spi = \"0x1000\", remote-spi = 8192, encryption = \"aes-128-cbc\", encryption-key = \"0x000102030405060708090a0b0c0d0e0f\", authentication = \"sha1\", authentication-key = \"0x00010203040506070809000102030405060708ff\", local-address = \"192.0.2.1\", peer-address = \"192.0.2.2\"";
    let l = ok(&mk(good));
    let ferrosec_config::Keying::ManualKey(m) = &l.config.ipsec_tunnels["t1"].keying else {
        panic!()
    };
    assert_eq!((m.local_spi.0, m.remote_spi.0), (0x1000, 8192));
    assert_eq!(m.encryption_key.len(), 16);
    assert_eq!(m.authentication_key.len(), 20);
    assert!(!format!("{m:?}").contains("0f"), "keys in Debug");

    let short = good.replace("0x000102030405060708090a0b0c0d0e0f", "0x0001020304050607");
    let d = assert_error(
        &mk(&short),
        "ipsec-tunnel",
        Some("t1"),
        "manual-key.encryption-key",
        "8 bytes long, but aes-128-cbc needs 16 bytes",
    );
    assert!(!d.to_string().contains("0001020304050607"));
    let gcm = good.replace(
        "aes-128-cbc\", encryption-key = \"0x000102030405060708090a0b0c0d0e0f\"",
        "aes-128-gcm\", encryption-key = \"0x000102030405060708090a0b0c0d0e0f\"",
    );
    assert_error(
        &mk(&gcm),
        "ipsec-tunnel",
        Some("t1"),
        "manual-key.encryption-key",
        "needs 20 bytes",
    );
    let none = good.replace("authentication = \"sha1\"", "authentication = \"none\"");
    assert_error(
        &mk(&none),
        "ipsec-tunnel",
        Some("t1"),
        "manual-key.authentication",
        "only with an AEAD cipher",
    );
    let spi = good.replace("\"0x1000\"", "\"0x10\"");
    assert_error(
        &mk(&spi),
        "ipsec-tunnel",
        Some("t1"),
        "manual-key.local-spi",
        "reserved",
    );
    let fam = good.replace(
        "peer-address = \"192.0.2.2\"",
        "peer-address = \"2001:db8::2\"",
    );
    assert_error(
        &mk(&fam),
        "ipsec-tunnel",
        Some("t1"),
        "manual-key.peer-address",
        "different address families",
    );
    let hex = good.replace(
        "0x000102030405060708090a0b0c0d0e0f",
        "0x00010203040506070809zz0b0c0d0e0f",
    );
    assert_error(
        &mk(&hex),
        "ipsec-tunnel",
        Some("t1"),
        "manual-key.encryption-key",
        "not a hex digit",
    );
    // manual-key on an auto-key tunnel, and an IKE gateway on a manual-key tunnel.
    let t = add(
        &base(),
        "[ipsec-tunnel.t1]",
        &format!("manual-key = {{ {good} }}"),
    );
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "manual-key",
        "auto-key tunnel",
    );
    let t = add(&mk(good), "[ipsec-tunnel.t1]", "ike-gateway = \"gw1\"");
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "ike-gateway",
        "type is manual-key",
    );
}

#[test]
fn replay_window_is_a_power_of_two() {
    let t = add(&base(), "[ipsec-tunnel.t1]", "replay-window = 1000");
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "replay-window",
        "power of two",
    );
    let l = ok(&add(&base(), "[ipsec-tunnel.t1]", "anti-replay = false"));
    assert_eq!(l.config.ipsec_tunnels["t1"].replay_window, None);
    assert_warning(
        &l,
        "ipsec-tunnel",
        "t1",
        "anti-replay",
        "replayed packets are accepted",
    );
}

// --- interfaces, zones, routes ------------------------------------------------------------

#[test]
fn tunnel_interface_names_and_mtu() {
    let t = edit(
        &base(),
        "[tunnel-interface.\"tunnel.1\"]",
        "[tunnel-interface.\"tun1\"]",
    );
    assert_error(
        &t,
        "tunnel-interface",
        Some("tun1"),
        "name",
        "not a tunnel interface name",
    );
    let t = add(&base(), "[tunnel-interface.\"tunnel.1\"]", "mtu = 100");
    assert_error(
        &t,
        "tunnel-interface",
        Some("tunnel.1"),
        "mtu",
        "out of range",
    );
    let t = add(&base(), "[tunnel-interface.\"tunnel.1\"]", "mtu = 1000");
    let t = edit(
        &t,
        "address = \"169.254.0.1/30\"",
        "address = [\"169.254.0.1/30\", \"fd00::1/64\"]",
    );
    let d = assert_error(
        &t,
        "tunnel-interface",
        Some("tunnel.1"),
        "mtu",
        "1000 is out of range",
    );
    assert!(d.fix.unwrap().contains("from 1280"));
}

#[test]
fn tcp_mss_clamp_is_auto_or_a_number() {
    use ferrosec_config::MssClamp;
    let ti = |l: Loaded| l.config.tunnel_interfaces["tunnel.1"].tcp_mss_clamp;
    assert_eq!(ti(ok(&base())), MssClamp::Off);
    let t = add(
        &base(),
        "[tunnel-interface.\"tunnel.1\"]",
        "tcp-mss-clamp = \"auto\"",
    );
    assert_eq!(ti(ok(&t)), MssClamp::Auto);
    let t = add(
        &base(),
        "[tunnel-interface.\"tunnel.1\"]",
        "tcp-mss-clamp = 1360",
    );
    assert_eq!(ti(ok(&t)), MssClamp::Fixed(1360));
    for bad in ["100", "10000", "\"on\"", "\"1360\""] {
        let t = add(
            &base(),
            "[tunnel-interface.\"tunnel.1\"]",
            &format!("tcp-mss-clamp = {bad}"),
        );
        let d = assert_error(
            &t,
            "tunnel-interface",
            Some("tunnel.1"),
            "tcp-mss-clamp",
            "neither \"auto\" nor an MSS of 536-9176",
        );
        assert!(d.fix.unwrap().contains("tcp-mss-clamp = \"auto\""), "{bad}");
    }
}

#[test]
fn tunnel_interface_in_no_zone_or_two_zones() {
    let t = edit(&base(), "zone = \"vpn\"\n", "");
    let d = assert_error(
        &t,
        "tunnel-interface",
        Some("tunnel.1"),
        "zone",
        "in no zone",
    );
    assert_eq!(
        d.position.unwrap().line,
        18,
        "points at the [tunnel-interface] header"
    );
    let t = edit(
        &base(),
        "interfaces = [\"eth1\"]",
        "interfaces = [\"eth1\", \"tunnel.1\"]",
    );
    assert_error(
        &t,
        "tunnel-interface",
        Some("tunnel.1"),
        "zone",
        "more than one zone",
    );
    // Listed in the zone only (no zone key) is fine.
    let t = edit(&base(), "zone = \"vpn\"\n", "");
    let t = edit(
        &t,
        "[zone.vpn]\n",
        "[zone.vpn]\ninterfaces = [\"tunnel.1\"]\n",
    );
    assert_eq!(ok(&t).config.tunnel_interfaces["tunnel.1"].zone, "vpn");
}

#[test]
fn zone_naming_unknown_tunnel_interface() {
    let t = edit(
        &base(),
        "interfaces = [\"eth1\"]",
        "interfaces = [\"eth1\", \"tunnel.5\"]",
    );
    assert_error(
        &t,
        "zone",
        Some("trust"),
        "interfaces",
        "tunnel-interface \"tunnel.5\", which is not defined",
    );
    // Physical interfaces need no definition.
    let l = ok(&edit(
        &base(),
        "interfaces = [\"eth1\"]",
        "interfaces = [\"eth1\", \"ens3\"]",
    ));
    assert_eq!(l.config.zones["trust"].interfaces, ["eth1", "ens3"]);
    let t = edit(
        &base(),
        "[zone.vpn]\n",
        "[zone.vpn]\ninterfaces = [\"eth1\"]\n",
    );
    assert_error(
        &t,
        "zone",
        Some("vpn"),
        "interfaces",
        "also in zone \"trust\"",
    );
}

#[test]
fn static_route_to_missing_interface() {
    let t = edit(
        &base(),
        "interface = \"tunnel.1\" }",
        "interface = \"tunnel.9\" }",
    );
    assert_error(
        &t,
        "virtual-router",
        Some("default"),
        "static-route[1].interface",
        "tunnel-interface \"tunnel.9\", which is not defined",
    );
    let t = edit(
        &base(),
        "interface = \"tunnel.1\" }",
        "interface = \"eth7\" }",
    );
    assert_error(
        &t,
        "virtual-router",
        Some("default"),
        "static-route[1].interface",
        "\"eth7\" does not exist",
    );
    // A physical interface of a zone is fine (with a next hop).
    ok(&edit(
        &base(),
        "interface = \"tunnel.1\" }",
        "interface = \"eth1\", next-hop = \"10.0.0.1\" }",
    ));
    // A tunnel interface of another virtual router is not.
    let t = format!(
        "{}\n[virtual-router.other]\nstatic-route = [ {{ name = \"x\", destination = \"10.9.0.0/16\", interface = \"tunnel.1\" }} ]\n",
        base()
    );
    assert_error(
        &t,
        "virtual-router",
        Some("other"),
        "static-route[1].interface",
        "belongs to virtual-router \"default\"",
    );
}

#[test]
fn static_route_names_unique() {
    let t = edit(
        &base(),
        "interface = \"tunnel.1\" },",
        "interface = \"tunnel.1\" },\n  { name = \"r1\", destination = \"10.3.0.0/24\", interface = \"tunnel.1\" },",
    );
    assert_error(
        &t,
        "virtual-router",
        Some("default"),
        "static-route[2].name",
        "used twice",
    );
}

// --- rules --------------------------------------------------------------------------------

#[test]
fn security_rule_names_unique() {
    let t = format!(
        "{}\n[[security-rule]]\nname = \"out\"\nfrom = [\"vpn\"]\nto = [\"trust\"]\naction = \"deny\"\n",
        base()
    );
    let d = assert_error(&t, "security-rule", Some("out"), "name", "same name");
    assert!(d.message.contains("line 37"), "{d}");
    assert_eq!(d.position.unwrap().line, 43);
}

#[test]
fn security_rule_values() {
    let t = add(&base(), "name = \"out\"", "service = \"tcp/99999\"");
    assert_error(&t, "security-rule", Some("out"), "service", "not a port");
    let t = edit(&base(), "action = \"allow\"", "action = \"permit\"");
    assert_error(
        &t,
        "security-rule",
        Some("out"),
        "action",
        "unknown value \"permit\"",
    );
    let t = edit(&base(), "from = [\"trust\"]\n", "");
    assert_error(&t, "security-rule", Some("out"), "from", "required");
    let t = add(
        &base(),
        "name = \"out\"",
        "source = [\"10.1.0.0/24\", \"10.9.9.9-10.9.9.1\"]",
    );
    assert_error(
        &t,
        "security-rule",
        Some("out"),
        "source",
        "ends before it starts",
    );
    let l = ok(&add(
        &base(),
        "name = \"out\"",
        "destination = [\"any\"]\nservice = [\"udp/53\", \"tcp/8000-8080\"]\ndisabled = true",
    ));
    assert!(l.config.security_rules[0].disabled);
}

// --- syntax -------------------------------------------------------------------------------

fn syntax(text: &str) -> Diagnostic {
    match load_str(text, "test.toml") {
        Err(ConfigError::Syntax(d)) => *d,
        Err(e) => panic!("expected a syntax error, got {e}"),
        Ok(_) => panic!("expected a syntax error"),
    }
}

#[test]
fn duplicate_objects_are_clear_errors() {
    let t = format!(
        "{}\n[ike-gateway.gw1]\npeer-address = \"192.0.2.9\"\n",
        base()
    );
    let d = syntax(&t);
    assert!(d.message.contains("duplicate"), "{d}");
    assert!(d.fix.as_ref().unwrap().contains("only once"), "{d}");
    assert_eq!(d.position.unwrap().line, 42, "{d}");
}

#[test]
fn unknown_keys_are_errors_with_positions() {
    let t = add(&base(), "[ike-gateway.gw1]", "peer-adress = \"192.0.2.2\"");
    let d = syntax(&t);
    assert!(d.message.contains("unknown field `peer-adress`"), "{d}");
    assert_eq!(
        (d.kind.as_str(), d.name.as_deref()),
        ("ike-gateway", Some("gw1"))
    );
    assert_eq!(d.position.unwrap().line, 12);
    assert!(d.to_string().starts_with("test.toml:12:"), "{d}");
    let t = add(
        &base(),
        "[ipsec-tunnel.t1]",
        "proxy-id = [ { name = \"x\", local = \"any\", remote = \"any\", port = 5 } ]",
    );
    assert!(syntax(&t).message.contains("unknown field `port`"));
    let t = format!("[nat-rule.x]\nfoo = 1\n{}", base());
    assert!(syntax(&t).message.contains("nat-rule"));
}

#[test]
fn wrong_types_and_broken_toml_have_positions() {
    let t = edit(&base(), "encryption = [\"aes-256-cbc\"]", "encryption = 5");
    let d = syntax(&t);
    assert_eq!(d.position.unwrap().line, 4, "{d}");
    let t = edit(&base(), "version = \"ikev2\"", "version = ikev2");
    assert_eq!(syntax(&t).position.unwrap().line, 12);
    let t = edit(
        &base(),
        &format!("pre-shared-key = \"{PSK}\""),
        "pre-shared-key = 123456789",
    );
    let d = syntax(&t);
    assert!(
        !d.to_string().contains("123456789"),
        "a key of the wrong type is echoed: {d}"
    );
    assert!(d.message.contains("quoted string"), "{d}");
}

#[test]
fn all_errors_are_reported_together() {
    let t = edit(&base(), "ike-gateway = \"gw1\"", "ike-gateway = \"gw9\"");
    let t = edit(
        &t,
        &format!("pre-shared-key = \"{PSK}\""),
        "pre-shared-key = \"short\"",
    );
    let t = edit(&t, "to = [\"vpn\"]", "to = [\"nowhere\"]");
    let errs = errors(&t);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    // In file order.
    let lines: Vec<usize> = errs.iter().map(|e| e.position.unwrap().line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    let shown = load_str(&t, "test.toml").unwrap_err().to_string();
    assert_eq!(shown.lines().count(), 4, "{shown}");
    assert!(shown.ends_with("3 errors"));
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let l = ok(&base());
    let dbg = format!("{:?}", l.config);
    assert!(!dbg.contains(PSK), "Debug of Config shows the key");
    assert!(dbg.contains("<redacted>"));
    assert!(!format!("{:#?}", l.config).contains(PSK));
    // Every kind of broken file whose text holds the key: no message shows it.
    let broken = [
        edit(
            &base(),
            "peer-address = \"192.0.2.2\"",
            "peer-address = \"???\"",
        ),
        edit(&base(), "version = \"ikev2\"", "version = \"ikev3\""),
        add(&base(), "[ike-gateway.gw1]", "exchange-mode = \"main\""),
        add(&base(), "[ike-gateway.gw1]", "unknown = 1"),
        edit(&base(), &format!("\"{PSK}\""), &format!("[\"{PSK}\"]")),
        edit(&base(), &format!("\"{PSK}\""), &format!("\"{PSK}")),
        edit(&base(), &format!("\"{PSK}\""), PSK),
        format!(
            "{}\n[ike-gateway.gw1]\npre-shared-key = \"{PSK}\"\n",
            base()
        ),
    ];
    for t in &broken {
        let e = load_str(t, "test.toml").unwrap_err();
        let shown = format!("{e}\n{e:?}");
        assert!(!shown.contains(PSK), "the key leaks:\n{shown}");
        assert!(
            !shown.contains("enough key"),
            "part of the key leaks:\n{shown}"
        );
    }
}

/// `metrics-listen` takes an address and a port; anything else is an error naming the key.
#[test]
fn metrics_listen_is_an_address_and_port() {
    let base = "[global]\ncontrol-socket = \"/tmp/m.sock\"\n";
    let ok = ferrosec_config::load_str(
        &format!("{base}metrics-listen = \"127.0.0.1:9750\"\n"),
        "m.toml",
    )
    .expect("valid");
    assert_eq!(
        ok.config.global.metrics_listen,
        Some("127.0.0.1:9750".parse().unwrap())
    );
    let v6 = ferrosec_config::load_str(
        &format!("{base}metrics-listen = \"[::1]:9750\"\n"),
        "m.toml",
    )
    .expect("valid");
    assert!(v6.config.global.metrics_listen.is_some());
    let off = ferrosec_config::load_str(base, "m.toml").expect("valid");
    assert_eq!(off.config.global.metrics_listen, None, "off when absent");
    for bad in ["localhost:9750", "127.0.0.1", "127.0.0.1:0", ""] {
        let e = ferrosec_config::load_str(&format!("{base}metrics-listen = \"{bad}\"\n"), "m.toml")
            .expect_err(bad);
        let text = e.to_string();
        assert!(
            text.contains("metrics-listen") && text.contains("127.0.0.1:9750"),
            "{bad}: {text}"
        );
    }
}

/// `additional-key-exchange` (RFC 9370 ML-KEM): a list on the IKE crypto profile and on the
/// IPSec crypto profile (IKE_FOLLOWUP_KE for Child SAs made or rekeyed by CREATE_CHILD_SA);
/// unknown values, IKEv1 gateways and an IPSec profile without PFS are refused with the
/// object, the field and a fix.
#[test]
fn additional_key_exchange() {
    use ferrosec_config::algo::AdditionalKeyExchange as K;
    let t = add(
        &base(),
        "[ike-crypto-profile.p1]",
        "additional-key-exchange = [\"ml-kem-768\", \"none\"]",
    );
    let l = ok(&t);
    assert_eq!(
        l.config.ike_crypto_profiles["p1"].additional_key_exchange,
        [K::MlKem768, K::None]
    );
    let t = add(
        &base(),
        "[ike-crypto-profile.p1]",
        "additional-key-exchange = [\"kyber768\"]",
    );
    let d = assert_error(
        &t,
        "ike-crypto-profile",
        Some("p1"),
        "additional-key-exchange",
        "kyber768",
    );
    assert!(d.to_string().contains("ml-kem-768"), "{d}");
    let v1 = edit(&base(), "version = \"ikev2\"", "version = \"ikev1\"");
    let t = add(
        &v1,
        "[ike-crypto-profile.p1]",
        "additional-key-exchange = \"ml-kem-1024\"",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "ike-crypto-profile",
        "needs IKEv2",
    );
    // On the IPSec crypto profile (it has dh-group = "group19").
    let t = add(
        &base(),
        "[ipsec-crypto-profile.e1]",
        "additional-key-exchange = [\"ml-kem-768\"]",
    );
    let l = ok(&t);
    let e1 = &l.config.ipsec_crypto_profiles["e1"];
    assert_eq!(e1.additional_key_exchange, [K::MlKem768]);
    assert!(e1.has_additional_key_exchange());
    ok(&add(
        &base(),
        "[ipsec-crypto-profile.e1]",
        "additional-key-exchange = [\"ml-kem-1024\", \"none\"]",
    ));
    ok(&add(
        &base(),
        "[ipsec-crypto-profile.e1]",
        "additional-key-exchange = [\"none\"]",
    ));
    // Without PFS the additional key exchanges of a rekey never run.
    let t = add(
        &edit(&base(), "dh-group = \"group19\"", "dh-group = \"no-pfs\""),
        "[ipsec-crypto-profile.e1]",
        "additional-key-exchange = [\"ml-kem-768\"]",
    );
    let d = assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "additional-key-exchange",
        "no-pfs",
    );
    assert!(d.to_string().contains("set dh-group"), "{d}");
    // `none` alone with no-pfs is fine.
    ok(&add(
        &edit(&base(), "dh-group = \"group19\"", "dh-group = \"no-pfs\""),
        "[ipsec-crypto-profile.e1]",
        "additional-key-exchange = [\"none\"]",
    ));
    let t = add(
        &base(),
        "[ipsec-crypto-profile.e1]",
        "additional-key-exchange = [\"ml-kem-kyber\"]",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "additional-key-exchange",
        "ml-kem-kyber",
    );
    // An IKEv1 gateway's tunnel cannot use it.
    let t = add(
        &v1,
        "[ipsec-crypto-profile.e1]",
        "additional-key-exchange = [\"ml-kem-768\"]",
    );
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "ipsec-crypto-profile",
        "needs IKEv2",
    );
}

// --- config-payload (R-V2-12) ---------------------------------------------------------------

/// The base as a server: `config-payload` with `cp` on gw1, a dynamic peer.
fn cp_server(cp: &str) -> String {
    add(
        &edit(
            &base(),
            "peer-address = \"192.0.2.2\"",
            "peer-address = \"dynamic\"",
        ),
        "[ike-gateway.gw1]",
        &format!("config-payload = {cp}"),
    )
}

#[test]
fn config_payload_server_and_client_load() {
    let l = ok(&cp_server(
        r#"{ pool = ["10.9.0.0/24", "fd09::/112"], dns = ["10.2.0.53"], subnets = ["10.2.0.0/24"], required = true }"#,
    ));
    let gw = &l.config.ike_gateways["gw1"];
    let Some(ferrosec_config::ConfigPayload::Serve(p)) = &gw.config_payload else {
        panic!("no pool: {:?}", gw.config_payload);
    };
    assert_eq!(p.pool.len(), 2);
    assert!(p.required);
    // The pool is routed into the tunnel interface.
    let routes = &l.config.virtual_routers["default"].static_routes;
    assert!(
        routes.iter().any(|r| r.name == "config-payload-pool-gw1"
            && r.destination.to_string() == "10.9.0.0/24"
            && r.interface == "tunnel.1"),
        "{routes:?}"
    );
    // The tunnel interface's own address in the pool is reserved, and its prefix is the route.
    let l = ok(&edit(
        &cp_server(r#"{ pool = "10.9.0.0/24" }"#),
        "address = \"169.254.0.1/30\"",
        "address = \"10.9.0.1/24\"",
    ));
    let Some(ferrosec_config::ConfigPayload::Serve(p)) =
        &l.config.ike_gateways["gw1"].config_payload
    else {
        panic!("no pool");
    };
    assert_eq!(
        p.reserved,
        vec!["10.9.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(
        !l.config.virtual_routers["default"]
            .static_routes
            .iter()
            .any(|r| r.name.starts_with("config-payload"))
    );
    let l = ok(&add(
        &base(),
        "[ike-gateway.gw1]",
        "config-payload = { request = true }",
    ));
    assert_eq!(
        l.config.ike_gateways["gw1"].config_payload,
        Some(ferrosec_config::ConfigPayload::Request)
    );
}

#[test]
fn config_payload_errors_name_the_gateway_the_field_and_the_fix() {
    // IKEv1: mode-config is not built.
    let t = edit(
        &cp_server(r#"{ pool = "10.9.0.0/24" }"#),
        "version = \"ikev2\"",
        "version = \"ikev1\"",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "config-payload",
        "IKEv1 mode-config is not built",
    );
    let t = edit(
        &cp_server(r#"{ pool = "10.9.0.0/24" }"#),
        "version = \"ikev2\"",
        "version = \"ikev2-preferred\"",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "config-payload",
        "may fall back to IKEv1",
    );
    // Both roles at once.
    assert_error(
        &cp_server(r#"{ request = true, pool = "10.9.0.0/24" }"#),
        "ike-gateway",
        Some("gw1"),
        "config-payload.pool",
        "both set",
    );
    // Neither.
    assert_error(
        &cp_server(r#"{ dns = ["10.2.0.53"] }"#),
        "ike-gateway",
        Some("gw1"),
        "config-payload.pool",
        "neither asks",
    );
    // A client that cannot initiate.
    assert_error(
        &cp_server("{ request = true }"),
        "ike-gateway",
        Some("gw1"),
        "config-payload.request",
        "\"dynamic\"",
    );
    // Server-only keys on a client.
    assert_error(
        &add(
            &base(),
            "[ike-gateway.gw1]",
            "config-payload = { request = true, subnets = [\"10.1.0.0/24\"] }",
        ),
        "ike-gateway",
        Some("gw1"),
        "config-payload.subnets",
        "server hands out",
    );
    // Two IPv4 pools; a bad prefix.
    assert_error(
        &cp_server(r#"{ pool = ["10.9.0.0/24", "10.8.0.0/24"] }"#),
        "ike-gateway",
        Some("gw1"),
        "config-payload.pool",
        "same address family",
    );
    assert_error(
        &cp_server(r#"{ pool = "10.9.0.1/24" }"#),
        "ike-gateway",
        Some("gw1"),
        "config-payload.pool",
        "host bits",
    );
    // The pool overlaps the handed-out subnets, or the tunnel's LAN.
    assert_error(
        &cp_server(r#"{ pool = "10.9.0.0/24", subnets = ["10.9.0.0/16"] }"#),
        "ike-gateway",
        Some("gw1"),
        "config-payload.pool",
        "overlaps subnet 10.9.0.0/16",
    );
    let t = add(
        &cp_server(r#"{ pool = "10.1.0.128/25" }"#),
        "[ipsec-tunnel.t1]",
        "proxy-id = [{ name = \"lan\", local = \"10.1.0.0/24\", remote = \"0.0.0.0/0\" }]",
    );
    let d = assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "config-payload.pool",
        "overlaps the local side of proxy-id \"lan\"",
    );
    assert!(d.message.contains("10.1.0.128/25"), "{d}");
    // A pool that no proxy ID's remote side holds.
    let t = add(
        &cp_server(r#"{ pool = "10.9.0.0/24" }"#),
        "[ipsec-tunnel.t1]",
        "proxy-id = [{ name = \"lan\", local = \"10.1.0.0/24\", remote = \"10.2.0.0/24\" }]",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "config-payload.pool",
        "no proxy-id",
    );
    // Tunnels on two tunnel interfaces.
    let t = format!(
        "{}\n[tunnel-interface.\"tunnel.2\"]\nzone = \"vpn\"\n[ipsec-tunnel.t2]\ntunnel-interface = \"tunnel.2\"\nike-gateway = \"gw1\"\nipsec-crypto-profile = \"e1\"\n",
        cp_server(r#"{ pool = "10.9.0.0/24" }"#)
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "config-payload",
        "one tunnel interface",
    );
}

#[test]
fn config_payload_warnings() {
    // A server that may initiate.
    let l = ok(&add(
        &base(),
        "[ike-gateway.gw1]",
        "config-payload = { pool = \"10.9.0.0/24\" }",
    ));
    assert_warning(
        &l,
        "ike-gateway",
        "gw1",
        "config-payload.pool",
        "may also initiate",
    );
    // A client whose local side is a LAN.
    let l = ok(&add(
        &add(
            &base(),
            "[ike-gateway.gw1]",
            "config-payload = { request = true }",
        ),
        "[ipsec-tunnel.t1]",
        "proxy-id = [{ name = \"lan\", local = \"10.1.0.0/24\", remote = \"10.2.0.0/24\" }]",
    ));
    assert_warning(
        &l,
        "ike-gateway",
        "gw1",
        "config-payload",
        "narrowed to the address",
    );
}

#[test]
fn tcp_encapsulation_is_ikev2_only_with_nat_traversal_and_esp() {
    // Off by default, port 4500; "fallback" and "always" load and switch NAT traversal on.
    let l = ok(&base());
    let gw = &l.config.ike_gateways["gw1"];
    assert_eq!(
        gw.tcp_encapsulation,
        ferrosec_config::algo::TcpEncapsulation::No
    );
    assert_eq!(gw.tcp_port, 4500);
    assert!(!gw.nat_traversal);
    for mode in ["fallback", "always"] {
        let t = add(
            &base(),
            "[ike-gateway.gw1]",
            &format!("tcp-encapsulation = \"{mode}\"\ntcp-port = 443"),
        );
        let l = ok(&t);
        let gw = &l.config.ike_gateways["gw1"];
        assert_eq!(gw.tcp_encapsulation.to_string(), mode);
        assert_eq!(gw.tcp_port, 443);
        assert!(
            gw.nat_traversal,
            "TCP encapsulation frames ESP as behind a NAT"
        );
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }
    let t = add(&base(), "[ike-gateway.gw1]", "tcp-encapsulation = \"yes\"");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "tcp-encapsulation",
        "unknown value \"yes\"",
    );
    let t = add(
        &base(),
        "[ike-gateway.gw1]",
        "tcp-encapsulation = \"always\"",
    );
    let t = edit(&t, "version = \"ikev2\"", "version = \"ikev2-preferred\"");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "tcp-encapsulation",
        "IKEv2 feature",
    );
    let t = add(
        &base(),
        "[ike-gateway.gw1]",
        "tcp-encapsulation = \"fallback\"\nnat-traversal = false",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "tcp-encapsulation",
        "nat-traversal",
    );
    let t = add(
        &base(),
        "[ike-gateway.gw1]",
        "tcp-encapsulation = \"always\"\ntcp-port = 0",
    );
    assert_error(&t, "ike-gateway", Some("gw1"), "tcp-port", "out of range");
    let t = add(&base(), "[ike-gateway.gw1]", "tcp-port = 443");
    assert_warning(&ok(&t), "ike-gateway", "gw1", "tcp-port", "no effect");
    // AH cannot be framed.
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]\nauthentication = [\"none\"]",
        "protocol = \"ah\"\nauthentication = [\"sha256\"]",
    );
    let t = add(&t, "[ike-gateway.gw1]", "tcp-encapsulation = \"always\"");
    assert_error(
        &t,
        "ipsec-tunnel",
        Some("t1"),
        "ipsec-crypto-profile",
        "TCP encapsulation cannot carry",
    );
}
