//! Validation rules: IKE gateways.

use crate::common::*;

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
