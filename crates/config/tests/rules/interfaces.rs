//! Validation rules: tunnel interfaces, zones and static routes.

use crate::common::*;
use ferrosec_config::Loaded;

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
