//! Validation rules: the configuration payload (R-V2-12).

use crate::common::*;

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
