//! Validation rules: IPSec tunnels: auto and manual key, proxy IDs, monitors.

use crate::common::*;

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
