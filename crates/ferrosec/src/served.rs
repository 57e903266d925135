//! What this build of ferrosec does not serve of a valid configuration.
//!
//! The file contract (SPEC Appendix A) is wider than this build: a file may name IKEv1
//! gateways, certificates or manual-key tunnels, which load and validate but
//! which the daemon does not run. [`unserved`] lists them, and both the daemon (at start, in
//! the system log, and to leave the gateways out of the engine) and `ferrosec config check`
//! (which must never call plainly valid what the daemon will not serve) use this one list, so
//! the two never disagree.
//!
//! | object | field | this build |
//! |---|---|---|
//! | `ike-gateway` | `version = "ikev1"` | served: main and aggressive mode, PSK, ESP and AH |
//! | `ike-gateway` | `certificate` | served: IKEv2 (RSA and ECDSA, RFC 7427) and IKEv1 (RSA and ECDSA signatures, RFC 2409 §5.1, RFC 4754); on an IKEv1 gateway not served when the RSA key cannot sign IKEv1's raw hashes (not a two-prime PKCS#1/PKCS#8 key) |
//! | `ike-gateway` | `certificate.hash-and-url`, `hash-and-url-fetch` | served (IKEv2): ours sent to peers that fetch; the peer's fetched when `hash-and-url-fetch` (crate::fetch) |
//! | `ike-gateway` | `certificate.crl`, `crl-fetch` | served (IKEv2): the peer's chain checked against the CRL files and, with `crl-fetch`, the CRLs of its distribution points (crate::fetch) |
//! | `ike-gateway` | `local-id` / `peer-id` of type `dn` | served with certificates; not served with a pre-shared key |
//! | `ipsec-tunnel` | `type = "manual-key"` | served: static SA pairs in the data plane (crate::manual) |
//! | `ipsec-tunnel` | `ike-gateway` naming a gateway that is not served | not served |
//! | `ike-gateway` | `version = "ikev2-preferred"` | served: IKEv2 first, IKEv1 when IKE_SA_INIT fails or goes unanswered |
//! | `ike-gateway` | `fragmentation = true` (the default) | served: IKEv2 (RFC 7383) and IKEv1 (the FRAGMENTATION vendor ID and payload 132 of strongSwan and Cisco) |
//! | `ike-gateway` | `tcp-encapsulation`, `tcp-port` | served over IKEv2 (RFC 9329, crate::tcpencap); the listener starts with the daemon, so enabling it by reload needs a restart |
//! | `ipsec-tunnel` | `tunnel-monitor` | served: ICMP echo through the tunnel, wait-recover and fail-over (crate::monitor); ignored when its source and destination are outside every proxy ID |
//! | `virtual-router` | a `static-route` through a physical interface | served: installed with its next hop in its router's table |
//! | `virtual-router` | a router other than `default` (`interfaces`, `routing-table`) | served: a table of its own with rules for its members (crate::vrtables); no VRF devices on this kernel |

use std::fmt;

use ferrosec_config::algo::{IdType, IkeVersion};
use ferrosec_config::{Config, GatewayAuth, IkeGateway, Keying};

/// How much of the object is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Impact {
    /// The whole object (gateway or tunnel) is left out: the daemon does not run it.
    NotServed,
    /// The object runs, but this setting has no effect.
    Ignored,
}

/// One object, or one setting of an object, this build does not serve.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Unserved {
    /// The object kind as written in the file (`ike-gateway`).
    pub(crate) kind: &'static str,
    /// Its name.
    pub(crate) name: String,
    /// The key concerned (`version`).
    pub(crate) field: String,
    /// Its value as configured (never a secret).
    pub(crate) value: String,
    /// What this build does with it.
    pub(crate) impact: Impact,
    /// Why, in plain words.
    pub(crate) message: String,
    /// What to change.
    pub(crate) fix: String,
}

impl Unserved {
    /// `ike-gateway "branch1"`.
    pub(crate) fn object(&self) -> String {
        format!("{} \"{}\"", self.kind, self.name)
    }

    /// The text without the object: `field "version" = "ikev1": …; fix: …`.
    pub(crate) fn detail(&self) -> String {
        format!(
            "field \"{}\" = {}: {}; fix: {}",
            self.field, self.value, self.message, self.fix
        )
    }
}

impl fmt::Display for Unserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.impact {
            Impact::NotServed => "not served",
            Impact::Ignored => "ignored",
        };
        write!(f, "{what}: {}: {}", self.object(), self.detail())
    }
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// Why this build does not serve the gateway at all, if it does not.
pub(crate) fn gateway_not_served(gw: &IkeGateway) -> Option<Unserved> {
    let entry = |field: &str, value: String, message: &str, fix: &str| Unserved {
        kind: "ike-gateway",
        name: gw.name.clone(),
        field: field.to_owned(),
        value,
        impact: Impact::NotServed,
        message: message.to_owned(),
        fix: fix.to_owned(),
    };
    if let GatewayAuth::Certificate(c) = &gw.authentication {
        // IKEv1 signs its HASH_I/HASH_R raw (RFC 2409 §5.1), with our own RSA code, which
        // takes two-prime PKCS#1 and PKCS#8 keys (all that OpenSSL, strongSwan's pki and
        // ferrosec pki write).
        if gw.version.allows_v1()
            && let Some(cr) = &c.credentials
            && !cr.key().signs_prehashed()
        {
            return Some(entry(
                "certificate",
                format!("{{ key = {} … }}", quoted(&c.key.display().to_string())),
                &format!(
                    "this {} key cannot make IKEv1 signatures (RFC 2409 §5.1 signs the raw hash, \
                     which ferrosec does for two-prime RSA keys in PKCS#1 or PKCS#8 form only), \
                     so the gateway is not served{}",
                    cr.key().kind(),
                    if gw.version == IkeVersion::Ikev2Preferred {
                        " (its fall-back to IKEv1 would fail)"
                    } else {
                        ""
                    }
                ),
                "convert the key (openssl pkey -in KEY -out KEY.pem), or set version = \"ikev2\"",
            ));
        }
        if c.credentials.is_none() {
            return Some(entry(
                "certificate",
                format!("{{ local = {} … }}", quoted(&c.local.display().to_string())),
                "the certificate files were not read, so the gateway is not served",
                "load the configuration from its file (ferrosec config check FILE)",
            ));
        }
        return None;
    }
    for (field, id) in [("local-id", &gw.local_id), ("peer-id", &gw.peer_id)] {
        if let Some(id) = id
            && id.id_type == IdType::Dn
        {
            return Some(entry(
                field,
                format!("{{ type = \"dn\", value = {} }}", quoted(&id.value)),
                "IDs of type dn need certificate authentication, and this gateway uses a \
                 pre-shared key, so the gateway is not served",
                "use an ID of type fqdn, ufqdn, ipaddr or keyid, or authenticate with a \
                 certificate",
            ));
        }
    }
    None
}

/// Everything of `config` this build does not serve, gateways first, in name order.
pub(crate) fn unserved(config: &Config) -> Vec<Unserved> {
    let mut out = Vec::new();
    for gw in config.ike_gateways.values() {
        if let Some(u) = gateway_not_served(gw) {
            out.push(u);
        }
    }
    for t in config.ipsec_tunnels.values() {
        let entry = |field: &str, value: String, impact, message: String, fix: String| Unserved {
            kind: "ipsec-tunnel",
            name: t.name.clone(),
            field: field.to_owned(),
            value,
            impact,
            message,
            fix,
        };
        match &t.keying {
            Keying::ManualKey(_) => {}
            Keying::AutoKey { ike_gateway, .. } => {
                if config
                    .ike_gateways
                    .get(ike_gateway)
                    .is_some_and(|g| gateway_not_served(g).is_some())
                {
                    out.push(entry(
                        "ike-gateway",
                        quoted(ike_gateway),
                        Impact::NotServed,
                        format!(
                            "its ike-gateway \"{ike_gateway}\" is not served, so neither is the \
                             tunnel"
                        ),
                        format!("make ike-gateway \"{ike_gateway}\" one this build serves"),
                    ));
                    continue;
                }
            }
        }
        if let Some(m) = &t.monitor
            && crate::monitor::outside_proxy_ids(t)
        {
            out.push(entry(
                "tunnel-monitor",
                format!(
                    "{{ destination = \"{}\", source = \"{}\" }}",
                    m.destination, m.source
                ),
                Impact::Ignored,
                format!(
                    "its echo requests from {} to {} are outside every proxy ID of the tunnel: \
                     they would never cross it, and the monitor would take a working tunnel \
                     down, so it does not run",
                    m.source, m.destination
                ),
                "ping from an address in a proxy ID's local side to one in its remote side \
                 (e.g. the two gateways' LAN addresses)"
                    .into(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Config {
        ferrosec_config::load_str(text, "t.toml").unwrap().config
    }

    const BASE: &str = r#"
[ike-crypto-profile.p]
dh-group = ["group14"]
authentication = ["sha256"]
encryption = ["aes-128-cbc"]
[ike-gateway.gw]
local-address = "198.51.100.1"
peer-address = "198.51.100.2"
pre-shared-key = "a long enough test key"
ike-crypto-profile = "p"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[zone.vpn]
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw"
"#;

    #[test]
    fn a_plain_ikev2_gateway_is_served_in_full() {
        assert_eq!(unserved(&load(BASE)), []);
    }

    #[test]
    fn routes_through_physical_interfaces_and_the_same_prefix_in_two_routers_are_served() {
        let physical = format!(
            "{BASE}[zone.trust]\ninterfaces = [\"eth1\", \"eth2\"]\n[virtual-router.default]\nstatic-route = [ {{ name = \"lab\", destination = \"10.9.0.0/24\", interface = \"eth1\", next-hop = \"10.1.0.254\" }} ]\n"
        );
        assert_eq!(unserved(&load(&physical)), []);
        // Each router has its own table: the same destination and metric in both is no clash.
        let two = format!(
            "{physical}[virtual-router.other]\ninterfaces = [\"eth2\"]\nstatic-route = [ {{ name = \"lab2\", destination = \"10.9.0.0/24\", interface = \"eth2\", next-hop = \"10.3.0.254\" }} ]\n"
        );
        assert_eq!(unserved(&load(&two)), []);
    }

    #[test]
    fn an_ikev1_gateway_is_served() {
        let c = load(&BASE.replace("[ike-gateway.gw]", "[ike-gateway.gw]\nversion = \"ikev1\""));
        assert_eq!(unserved(&c), []);
        assert_eq!(gateway_not_served(&c.ike_gateways["gw"]), None);
    }

    #[test]
    fn unread_certificates_and_dn_ids_with_psk_are_not_served_manual_keys_are() {
        let cert = BASE.replace(
            "pre-shared-key = \"a long enough test key\"",
            "certificate = { local = \"hq.pem\", key = \"hq.key\", ca = [\"ca.pem\"] }",
        );
        // Read from a string: no files read, nothing to sign with.
        let list = unserved(&load(&cert));
        assert_eq!(list[0].field, "certificate");
        assert_eq!(list[0].value, "{ local = \"hq.pem\" … }");
        assert!(!list[0].to_string().contains("hq.key"));
        // IKEv1 gateways with certificates are served like IKEv2 ones (here: the files
        // were not read).
        for v in ["ikev1", "ikev2-preferred"] {
            let v1 = cert.replace(
                "[ike-gateway.gw]",
                &format!("[ike-gateway.gw]\nversion = \"{v}\""),
            );
            let list = unserved(&load(&v1));
            assert_eq!(list[0].field, "certificate", "{list:?}");
        }

        let dn = BASE.replace(
            "[ike-gateway.gw]",
            "[ike-gateway.gw]\npeer-id = { type = \"dn\", value = \"CN=branch\" }",
        );
        let list = unserved(&load(&dn));
        assert_eq!(list[0].field, "peer-id");
        assert_eq!(list[0].impact, Impact::NotServed);

        let manual = format!(
            "{BASE}[ipsec-tunnel.m]
tunnel-interface = \"tunnel.1\"
type = \"manual-key\"
manual-key = {{ local-spi = \"0x1000\", remote-spi = \"0x2000\", protocol = \"esp\", encryption = \"aes-128-cbc\", encryption-key = \"0x000102030405060708090a0b0c0d0e0f\", authentication = \"sha256\", authentication-key = \"0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\", local-address = \"198.51.100.1\", peer-address = \"198.51.100.2\" }}
"
        );
        // Manual-key tunnels run (crate::manual).
        assert_eq!(unserved(&load(&manual)), []);
    }

    #[test]
    fn an_ikev2_certificate_gateway_with_its_files_read_is_served() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fixtures");
        let dir = tempfile::tempdir().unwrap();
        let text = BASE.replace(
            "pre-shared-key = \"a long enough test key\"",
            &format!(
                "certificate = {{ local = \"{0}/p384.pem\", key = \"{0}/p384-sec1.key\", ca = [\"{0}/rsa2048.pem\"] }}\npeer-id = {{ type = \"dn\", value = \"CN=branch\" }}",
                fixtures.display()
            ),
        );
        let file = dir.path().join("vpn.toml");
        std::fs::write(&file, text).unwrap();
        // The fixtures are valid for 100 years from 2026-12-06.
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_797_000_000);
        let config = ferrosec_config::load_file_at(&file, now).unwrap().config;
        assert_eq!(gateway_not_served(&config.ike_gateways["gw"]), None);
        assert_eq!(unserved(&config), []);
    }

    #[test]
    fn ignored_settings_are_listed_but_leave_the_objects_served_and_monitors_run() {
        let text = BASE
            .replace(
                "[ike-gateway.gw]",
                "[ike-gateway.gw]\nversion = \"ikev2-preferred\"\nfragmentation = true",
            )
            .replace(
                "ike-gateway = \"gw\"\n",
                "ike-gateway = \"gw\"\ntunnel-monitor = { destination = \"10.2.0.1\", source = \"10.1.0.1\" }\n",
            );
        let list = unserved(&load(&text));
        let fields: Vec<&str> = list.iter().map(|u| u.field.as_str()).collect();
        assert!(
            fields.is_empty(),
            "ikev2-preferred (IKEv1 fallback), fragmentation (RFC 7383) and the tunnel monitor \
             are served: {list:?}"
        );
    }
}
