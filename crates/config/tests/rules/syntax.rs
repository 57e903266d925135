//! Validation rules: syntax, unknown keys and types, secrets, metrics, additional key exchanges.

use crate::common::*;
use ferrosec_config::{ConfigError, Diagnostic, load_str};

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
