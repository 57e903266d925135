//! Validation rules: references between objects: a name that is used must exist.

use crate::common::*;

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
