//! Validation rules: security rules.

use crate::common::*;

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
