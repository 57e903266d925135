//! What the validation tests share: a small valid file, edits to it, and checks that an error
//! names the object, the field, what is wrong and a fix.
#![allow(dead_code)] // each test file uses some of these

use ferrosec_config::{Diagnostic, Loaded, load_str};

pub(crate) const PSK: &str = "a long enough key";

/// A small valid configuration; tests edit it.
pub(crate) fn base() -> String {
    format!(
        r#"[ike-crypto-profile.p1]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-256-cbc"]

[ipsec-crypto-profile.e1]
encryption = ["aes-256-gcm"]
authentication = ["none"]
dh-group = "group19"

[ike-gateway.gw1]
version = "ikev2"
local-address = "192.0.2.1"
peer-address = "192.0.2.2"
pre-shared-key = "{PSK}"
ike-crypto-profile = "p1"

[tunnel-interface."tunnel.1"]
zone = "vpn"
address = "169.254.0.1/30"

[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw1"
ipsec-crypto-profile = "e1"

[virtual-router.default]
static-route = [
  {{ name = "r1", destination = "10.2.0.0/24", interface = "tunnel.1" }},
]

[zone.vpn]
[zone.trust]
interfaces = ["eth1"]

[[security-rule]]
name = "out"
from = ["trust"]
to = ["vpn"]
action = "allow"
"#
    )
}

/// Replace `from` (which must occur) by `to`.
pub(crate) fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "test bug: {from:?} not in the text");
    text.replacen(from, to, 1)
}

/// Add lines right after a table header.
pub(crate) fn add(text: &str, header: &str, lines: &str) -> String {
    edit(
        text,
        &format!("{header}\n"),
        &format!("{header}\n{lines}\n"),
    )
}

pub(crate) fn ok(text: &str) -> Loaded {
    match load_str(text, "test.toml") {
        Ok(l) => l,
        Err(e) => panic!("expected the file to load:\n{e}\n---\n{text}"),
    }
}

pub(crate) fn errors(text: &str) -> Vec<Diagnostic> {
    match load_str(text, "test.toml") {
        Ok(_) => panic!("expected an error:\n{text}"),
        Err(e) => {
            let shown = e.to_string();
            assert!(
                !shown.contains(PSK),
                "an error shows the pre-shared key: {shown}"
            );
            e.diagnostics().to_vec()
        }
    }
}

/// The file fails with an error on `kind "name"`, field `field`, whose message contains
/// `needle`; it has a fix and a position, and its text reads `test.toml:L:C: kind "name": field`.
pub(crate) fn assert_error(
    text: &str,
    kind: &str,
    name: Option<&str>,
    field: &str,
    needle: &str,
) -> Diagnostic {
    let errs = errors(text);
    let found = errs
        .iter()
        .find(|d| d.kind == kind && d.name.as_deref() == name && d.field.as_deref() == Some(field));
    let Some(d) = found else {
        panic!("no error on {kind} {name:?} field {field}; got:\n{errs:#?}");
    };
    assert!(
        d.message.contains(needle),
        "message {:?} lacks {needle:?}",
        d.message
    );
    assert!(d.fix.as_ref().is_some_and(|f| f.len() > 5), "no fix: {d:?}");
    assert!(d.position.is_some(), "no position: {d:?}");
    let shown = d.to_string();
    let object = match name {
        Some(n) => format!("{kind} \"{n}\""),
        None => kind.to_owned(),
    };
    assert!(shown.starts_with("test.toml:"), "{shown}");
    assert!(
        shown.contains(&format!("{object}: field \"{field}\": ")),
        "{shown}"
    );
    assert!(shown.contains("; fix: "), "{shown}");
    d.clone()
}

pub(crate) fn assert_warning(l: &Loaded, kind: &str, name: &str, field: &str, needle: &str) {
    let found = l.warnings.iter().any(|w| {
        w.kind == kind
            && w.name.as_deref() == Some(name)
            && w.field.as_deref() == Some(field)
            && w.message.contains(needle)
            && w.fix.is_some()
    });
    assert!(
        found,
        "no warning on {kind} {name} {field} with {needle:?}: {:#?}",
        l.warnings
    );
}
