//! What a reloaded configuration file changes against the one in force (SIGHUP).
//!
//! Objects are compared by kind and name, whole (a changed proxy ID changes its tunnel), so the
//! system log can name every object a reload would touch. Security rules are compared by name
//! and as an ordered list (the first match wins, so moving a rule changes the policy).

use std::collections::BTreeMap;

use ferrosec_config::Config;

/// One object the new file adds, removes or changes: `ike-gateway branch1 (changed)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The object kind as written in the file (`ike-gateway`).
    pub(crate) kind: &'static str,
    /// Its name.
    pub(crate) name: String,
    /// `added`, `removed` or `changed`.
    pub(crate) what: &'static str,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.kind, self.name, self.what)
    }
}

fn diff<T: PartialEq>(
    kind: &'static str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    out: &mut Vec<Change>,
) {
    let mut push = |name: &String, what| {
        out.push(Change {
            kind,
            name: name.clone(),
            what,
        })
    };
    for (name, o) in old {
        match new.get(name) {
            None => push(name, "removed"),
            Some(n) if n != o => push(name, "changed"),
            Some(_) => {}
        }
    }
    for name in new.keys().filter(|n| !old.contains_key(*n)) {
        push(name, "added");
    }
}

/// Every object `new` adds, removes or changes against `old`, in file order of kinds.
pub(crate) fn changes(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    if old.global != new.global {
        out.push(Change {
            kind: "global",
            name: String::new(),
            what: "changed",
        });
    }
    diff(
        "ike-crypto-profile",
        &old.ike_crypto_profiles,
        &new.ike_crypto_profiles,
        &mut out,
    );
    diff(
        "ipsec-crypto-profile",
        &old.ipsec_crypto_profiles,
        &new.ipsec_crypto_profiles,
        &mut out,
    );
    diff(
        "ike-gateway",
        &old.ike_gateways,
        &new.ike_gateways,
        &mut out,
    );
    diff(
        "tunnel-interface",
        &old.tunnel_interfaces,
        &new.tunnel_interfaces,
        &mut out,
    );
    diff(
        "ipsec-tunnel",
        &old.ipsec_tunnels,
        &new.ipsec_tunnels,
        &mut out,
    );
    diff(
        "monitor-profile",
        &old.monitor_profiles,
        &new.monitor_profiles,
        &mut out,
    );
    diff(
        "virtual-router",
        &old.virtual_routers,
        &new.virtual_routers,
        &mut out,
    );
    diff("zone", &old.zones, &new.zones, &mut out);
    let rules = |c: &Config| -> BTreeMap<String, (usize, ferrosec_config::SecurityRule)> {
        c.security_rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), (i, r.clone())))
            .collect()
    };
    diff("security-rule", &rules(old), &rules(new), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[ike-crypto-profile.ike]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-256-cbc"]

[ipsec-crypto-profile.esp]
encryption = ["aes-256-gcm"]

[ike-gateway.gw1]
version = "ikev2"
local-address = "192.0.2.1"
peer-address = "192.0.2.2"
pre-shared-key = "a-long-enough-shared-secret"
ike-crypto-profile = "ike"

[tunnel-interface."tunnel.1"]
zone = "vpn"

[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw1"
ipsec-crypto-profile = "esp"
proxy-id = [{ name = "p1", local = "10.1.0.0/24", remote = "10.2.0.0/24" }]

[zone.vpn]
interfaces = ["tunnel.1"]
"#;

    fn load(s: &str) -> Config {
        ferrosec_config::load_str(s, "test.toml").unwrap().config
    }

    fn names(c: &[Change]) -> Vec<String> {
        c.iter().map(Change::to_string).collect()
    }

    #[test]
    fn the_same_file_changes_nothing() {
        assert!(changes(&load(BASE), &load(BASE)).is_empty());
    }

    #[test]
    fn added_removed_and_changed_objects_are_named() {
        let more = format!(
            "{BASE}\n[ike-gateway.gw2]\nversion = \"ikev2\"\nlocal-address = \"192.0.2.1\"\n\
             peer-address = \"192.0.2.3\"\npre-shared-key = \"another-long-shared-secret\"\n\
             ike-crypto-profile = \"ike\"\n"
        );
        assert_eq!(
            names(&changes(&load(BASE), &load(&more))),
            ["ike-gateway gw2 (added)"]
        );
        assert_eq!(
            names(&changes(&load(&more), &load(BASE))),
            ["ike-gateway gw2 (removed)"]
        );
        // A changed proxy ID changes its tunnel, and only that.
        let narrowed = BASE.replace("10.2.0.0/24", "10.2.0.0/25");
        assert_eq!(
            names(&changes(&load(BASE), &load(&narrowed))),
            ["ipsec-tunnel t1 (changed)"]
        );
        let key = BASE.replace("a-long-enough-shared-secret", "a-different-shared-secret");
        assert_eq!(
            names(&changes(&load(BASE), &load(&key))),
            ["ike-gateway gw1 (changed)"]
        );
    }
}
