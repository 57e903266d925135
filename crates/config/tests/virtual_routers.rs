//! Virtual routers with routing tables of their own: members, tables and where their routes
//! may leave; each error names the object, the field, what is wrong and the fix.

mod common;
use common::*;
use ferrosec_config::{MAIN_TABLE, derived_routing_table};

/// The base plus a second tunnel interface in virtual router `red`, which holds eth2 and a
/// route to the same prefix as `default` does.
fn two_routers() -> String {
    format!(
        "{}
[tunnel-interface.\"tunnel.2\"]
zone = \"vpn\"
virtual-router = \"red\"

[ipsec-tunnel.t2]
tunnel-interface = \"tunnel.2\"
ike-gateway = \"gw1\"
ipsec-crypto-profile = \"e1\"

[virtual-router.red]
interfaces = [\"eth2\"]
static-route = [
  {{ name = \"r1\", destination = \"10.2.0.0/24\", interface = \"tunnel.2\" }},
  {{ name = \"lab\", destination = \"10.9.0.0/24\", interface = \"eth2\", next-hop = \"10.3.0.254\" }},
]
",
        base()
    )
}

#[test]
fn each_router_has_its_table_and_members() {
    let l = ok(&two_routers());
    let vrs = &l.config.virtual_routers;
    assert_eq!(vrs["default"].routing_table, MAIN_TABLE);
    assert!(vrs["default"].interfaces.is_empty());
    let red = &vrs["red"];
    assert_eq!(red.interfaces, ["eth2"]);
    assert_eq!(red.routing_table, derived_routing_table("red"));
    assert!((1000..65_000).contains(&red.routing_table));
    assert_ne!(red.routing_table, MAIN_TABLE);
    // The same prefix in both routers is no clash: each has its own table.
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // An explicit table wins.
    let l = ok(&edit(
        &two_routers(),
        "interfaces = [\"eth2\"]",
        "interfaces = [\"eth2\"]\nrouting-table = 1001",
    ));
    assert_eq!(l.config.virtual_routers["red"].routing_table, 1001);
}

#[test]
fn derived_tables_are_stable_and_spread() {
    assert_eq!(derived_routing_table("default"), MAIN_TABLE);
    assert_eq!(derived_routing_table("red"), derived_routing_table("red"));
    let names = ["red", "blue", "green", "vr1", "vr2", "vr3", "guest", "dmz"];
    let mut tables: Vec<u32> = names.iter().map(|n| derived_routing_table(n)).collect();
    tables.sort_unstable();
    tables.dedup();
    assert_eq!(tables.len(), names.len(), "{tables:?}");
}

#[test]
fn the_default_router_keeps_the_main_table() {
    let t = edit(
        &base(),
        "[virtual-router.default]\n",
        "[virtual-router.default]\nrouting-table = 1001\n",
    );
    assert_error(
        &t,
        "virtual-router",
        Some("default"),
        "routing-table",
        "not the main table",
    );
    // 254 written out is the main table: fine.
    ok(&edit(
        &base(),
        "[virtual-router.default]\n",
        "[virtual-router.default]\nrouting-table = 254\n",
    ));
}

#[test]
fn kernel_tables_and_shared_tables_are_refused() {
    for bad in ["0", "253", "255", "4294967296"] {
        let t = edit(
            &two_routers(),
            "interfaces = [\"eth2\"]",
            &format!("interfaces = [\"eth2\"]\nrouting-table = {bad}"),
        );
        assert_error(
            &t,
            "virtual-router",
            Some("red"),
            "routing-table",
            "cannot be a virtual router's table",
        );
    }
    let t = format!(
        "{}\n[virtual-router.blue]\nrouting-table = 1001\n",
        edit(
            &two_routers(),
            "interfaces = [\"eth2\"]",
            "interfaces = [\"eth2\"]\nrouting-table = 1001"
        )
    );
    let d = assert_error(
        &t,
        "virtual-router",
        Some("red"),
        "routing-table",
        "already virtual-router \"blue\"'s",
    );
    assert!(d.fix.unwrap().contains("routing-table = 1002"));
}

#[test]
fn an_interface_is_in_one_router() {
    let t = format!(
        "{}\n[virtual-router.blue]\ninterfaces = [\"eth2\"]\n",
        two_routers()
    );
    assert_error(
        &t,
        "virtual-router",
        Some("red"),
        "interfaces",
        "already in virtual-router \"blue\"",
    );
    // Tunnel interfaces name their router themselves.
    let t = edit(
        &two_routers(),
        "interfaces = [\"eth2\"]",
        "interfaces = [\"eth2\", \"tunnel.1\"]",
    );
    let d = assert_error(
        &t,
        "virtual-router",
        Some("red"),
        "interfaces",
        "is a tunnel interface",
    );
    assert!(d.message.contains("it is in \"default\""), "{}", d.message);
    assert!(
        d.fix
            .unwrap()
            .contains("virtual-router = \"red\" in [tunnel-interface.\"tunnel.1\"]")
    );
    let t = edit(
        &two_routers(),
        "interfaces = [\"eth2\"]",
        "interfaces = [\"eth/2\"]",
    );
    assert_error(
        &t,
        "virtual-router",
        Some("red"),
        "interfaces",
        "not a valid interface name",
    );
}

#[test]
fn a_route_leaves_by_its_own_routers_interfaces() {
    // default routing out of red's member.
    let t = edit(
        &two_routers(),
        "interface = \"tunnel.1\" }",
        "interface = \"tunnel.1\" },\n  { name = \"x\", destination = \"10.7.0.0/24\", interface = \"eth2\", next-hop = \"10.3.0.1\" }",
    );
    let d = assert_error(
        &t,
        "virtual-router",
        Some("default"),
        "static-route[2].interface",
        "is in virtual-router \"red\", not \"default\"",
    );
    assert!(d.fix.unwrap().contains("[virtual-router.red]"));
    // red routing out of a zone's interface that it does not hold (so default's).
    let t = edit(
        &two_routers(),
        "interface = \"eth2\", next-hop",
        "interface = \"eth1\", next-hop",
    );
    let d = assert_error(
        &t,
        "virtual-router",
        Some("red"),
        "static-route[2].interface",
        "is in virtual-router \"default\", not \"red\"",
    );
    assert!(
        d.fix
            .unwrap()
            .contains("add \"eth1\" to interfaces in [virtual-router.red]")
    );
    // A member needs no zone to be routed through.
    let l = ok(&two_routers());
    assert_eq!(
        l.config.virtual_routers["red"].static_routes[1].interface,
        "eth2"
    );
}
