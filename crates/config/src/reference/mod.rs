//! The configuration reference: every key of every object, as data.
//!
//! `docs/configuration.md` is generated from [`SECTIONS`], [`REFERENCE`] and the presets by
//! [`markdown`]. Tests keep the three in step with the parser:
//!
//! * the keys of each section are exactly the fields the raw serde structs accept (read from the
//!   derived `Deserialize` impls, so a key added to the parser without documentation fails);
//! * every example value loads when put into a valid file;
//! * every keyword the parser accepts appears in the documented allowed values;
//! * documented defaults match what the loader fills in;
//! * `docs/configuration.md` equals [`markdown`]`()` (`UPDATE_DOCS=1 cargo test -p
//!   ferrosec-config` rewrites it).

use std::fmt::Write as _;

use crate::presets;
use crate::value::format_duration;

mod keys_gateway;
mod keys_global_profiles;
mod keys_network;
mod keys_tunnel;

/// A section of the file: a kind of object or a nested table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionDoc {
    /// The section's name as used in [`KeyDoc::section`].
    pub section: &'static str,
    /// How it is written in the file.
    pub syntax: &'static str,
    /// What it is.
    pub doc: &'static str,
}

/// One key of the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The section: `global`, `ike-gateway`, `ipsec-tunnel.proxy-id` …
    pub section: &'static str,
    /// The key.
    pub key: &'static str,
    /// Its type in words.
    pub ty: &'static str,
    /// Its default (`required` when there is none, `none` when absence means off/unset).
    pub default: &'static str,
    /// Allowed values or range.
    pub allowed: &'static str,
    /// What it does.
    pub doc: &'static str,
    /// A valid example value in TOML syntax.
    pub example: &'static str,
}

/// Every section, in document order.
pub const SECTIONS: &[SectionDoc] = &[
    SectionDoc {
        section: "file",
        syntax: "top level",
        doc: "The kinds of objects. Every table is optional; names are unique within a kind (TOML refuses a table defined twice).",
    },
    SectionDoc {
        section: "global",
        syntax: "[global]",
        doc: "VPN-wide settings (R-CFG-10).",
    },
    SectionDoc {
        section: "ike-crypto-profile",
        syntax: "[ike-crypto-profile.NAME]",
        doc: "IKE SA proposals (R-CFG-1). Lists are in order of preference; every combination is proposed. The built-in presets can be used without being defined.",
    },
    SectionDoc {
        section: "ipsec-crypto-profile",
        syntax: "[ipsec-crypto-profile.NAME]",
        doc: "Child SA / phase 2 proposals (R-CFG-2). An AEAD cipher (GCM, CCM) is proposed without an integrity algorithm; other ciphers with each hash of `authentication`.",
    },
    SectionDoc {
        section: "ike-gateway",
        syntax: "[ike-gateway.NAME]",
        doc: "A peer and how to reach and authenticate it (R-CFG-4). Exactly one of `pre-shared-key` and `certificate`.",
    },
    SectionDoc {
        section: "ike-gateway.certificate",
        syntax: "certificate = { … }",
        doc: "Certificate authentication. Relative paths are relative to the configuration file's directory. The files are read and checked whenever the configuration is loaded (`ferrosec config check`, daemon start and reload); a problem with them is an error of the file (see [Certificate files](#certificate-files)). IKEv2 gateways authenticate with them (RSA or ECDSA, RFC 7427 digital signatures, CERT and CERTREQ, the peer's chain checked against `ca`); IKEv1 gateways too (main and aggressive mode, RFC 2409 §5.1 / RFC 4754: RSA signatures, method 3, or ECDSA P-256/384/521, methods 9/10/11, as the key of `local` gives; both peers must use the same kind of key; CR payloads name each `ca` by its subject DN, our chain is always sent). Without `local-id`, our ID is the certificate's subject DN; `peer-id` (any type) must then be named by the peer's certificate, in its subject or a subjectAltName (see [IKEv1 certificates](ikev1-certificates.md)).",
    },
    SectionDoc {
        section: "ike-gateway.local-id",
        syntax: "local-id = { … } / peer-id = { … }",
        doc: "An IKE identity; `local-id` and `peer-id` have the same shape. Without it, the IP address is the identity, or with `certificate` the certificate's subject DN (both IKE versions).",
    },
    SectionDoc {
        section: "ike-gateway.config-payload",
        syntax: "config-payload = { … }",
        doc: "The IKEv2 configuration payload (RFC 7296 §2.19, R-V2-12), on an IKEv2 gateway of a route-based tunnel: the client (`request = true`) asks for an address in IKE_AUTH and puts it on its tunnel interface (a /32, or the IPv6 address with its prefix), with the subnets it gets as routes through it (metric 20, so a configured static route of the default metric 10 stays as it is), both removed when the IKE SA goes; DNS servers are shown and logged, not written to the resolver. The server (`pool = …`) hands out an address per family asked for, leased to the client's authenticated identity: the same identity gets the same address again on reconnect and re-authentication (so give each client its own identity), an address goes to another identity only when no address of the pool was never handed out (the one offline longest), and a client that finds the pool exhausted is refused with INTERNAL_ADDRESS_FAILURE and a log line in words. Either way the client's side of every IPsec SA is narrowed to its address, as strongSwan does with virtual IPs. The server routes the pool into its tunnel interface (a static route `config-payload-pool-GATEWAY` in the interface's virtual router, unless the interface's own prefix or a route to the pool through it is configured) and never hands out the tunnel interface's own address. The gateway's tunnels must share one tunnel interface. IKEv1 mode-config is not built: on an `ikev1` or `ikev2-preferred` gateway it is an error.",
    },
    SectionDoc {
        section: "ike-gateway.dpd",
        syntax: "dpd = { … }",
        doc: "IKEv1 dead peer detection (RFC 3706). On by default for IKEv1 gateways.",
    },
    SectionDoc {
        section: "tunnel-interface",
        syntax: "[tunnel-interface.\"tunnel.N\"]",
        doc: "A route-based tunnel interface, a TUN device (R-CFG-5). It must be in exactly one zone: by its `zone` key, by a zone's `interfaces`, or both when they agree.",
    },
    SectionDoc {
        section: "ipsec-tunnel",
        syntax: "[ipsec-tunnel.NAME]",
        doc: "Binds a gateway and an IPSec profile (auto-key) or static keys (manual-key) to a tunnel interface (R-CFG-6).",
    },
    SectionDoc {
        section: "ipsec-tunnel.proxy-id",
        syntax: "proxy-id = [ { … }, … ]",
        doc: "Traffic selector pairs. None at all means 0.0.0.0/0 and ::/0 both ways. At most 250 per tunnel interface (over all its tunnels); unique per gateway.",
    },
    SectionDoc {
        section: "ipsec-tunnel.tunnel-monitor",
        syntax: "tunnel-monitor = { … }",
        doc: "ICMP echo across the tunnel (R-OPS-1).",
    },
    SectionDoc {
        section: "ipsec-tunnel.manual-key",
        syntax: "manual-key = { … }",
        doc: "Static SAs for `type = \"manual-key\"`. Keys are hex; lengths must match the algorithms (GCM keys carry a 4-byte salt, CCM a 3-byte salt).",
    },
    SectionDoc {
        section: "monitor-profile",
        syntax: "[monitor-profile.NAME]",
        doc: "What a tunnel monitor does (R-CFG-7). A built-in `default` (wait-recover, 3s, 5) exists.",
    },
    SectionDoc {
        section: "virtual-router",
        syntax: "[virtual-router.NAME]",
        doc: "Static routes (R-CFG-8) in a routing table of their own. The virtual router `default` always exists and is the host's main table; it holds every interface that no other virtual router lists. Any other virtual router gets its own table (`routing-table`) and policy rules (`ip rule`, priority 1000) that look it up for packets arriving on its members (its `interfaces` and the tunnel interfaces that name it) and for packets the gateway sends bound to them; the members' connected prefixes are copied into it, and an `unreachable default` (metric 4278198272, as Linux VRFs have) ends it, so its traffic never falls through to another router's routes. Two virtual routers may therefore hold the same prefix. This kernel build has no VRF devices, so these are tables and rules; the gateway's own IKE and ESP packets use the main table.",
    },
    SectionDoc {
        section: "virtual-router.static-route",
        syntax: "static-route = [ { … }, … ]",
        doc: "A route; via a tunnel interface it sends matching traffic into that tunnel. The interface must be a tunnel interface of this virtual router or a physical interface named in a zone or a gateway.",
    },
    SectionDoc {
        section: "zone",
        syntax: "[zone.NAME]",
        doc: "A security zone (R-CFG-9). Each interface is in at most one zone; each tunnel interface in exactly one. Physical interfaces (eth1 …) need no definition. A LAN address is in the zone of the interface it is reached by: the most specific prefix connected to or routed through a zoned interface (its default route too), read at start and at each reload, so a host behind a router on the LAN is filtered as the LAN's zone. Traffic between different zones needs an allowing security rule.",
    },
    SectionDoc {
        section: "security-rule",
        syntax: "[[security-rule]]",
        doc: "Rules in order, first match wins; traffic between different zones is denied by default, within a zone allowed (R-CFG-9).",
    },
];

const DURATION: &str = "duration";
const SIZE: &str = "size";

/// Every key, by section, in document order.
pub const REFERENCE: &[KeyDoc] = &ALL_KEYS;

/// The key tables of the submodules, in document order.
const KEY_TABLES: [&[KeyDoc]; 4] = [
    keys_global_profiles::KEYS,
    keys_gateway::KEYS,
    keys_tunnel::KEYS,
    keys_network::KEYS,
];

/// [`KEY_TABLES`] joined into one array, the storage of [`REFERENCE`].
const ALL_KEYS: [KeyDoc; key_count(&KEY_TABLES)] = join_keys(&KEY_TABLES);

/// The number of keys in `tables`.
const fn key_count(tables: &[&[KeyDoc]]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < tables.len() {
        n += tables[i].len();
        i += 1;
    }
    n
}

/// `tables` joined in order; `N` must be [`key_count`]`(tables)`.
const fn join_keys<const N: usize>(tables: &[&[KeyDoc]]) -> [KeyDoc; N] {
    const BLANK: KeyDoc = KeyDoc {
        section: "",
        key: "",
        ty: "",
        default: "",
        allowed: "",
        doc: "",
        example: "",
    };
    let mut out = [BLANK; N];
    let mut n = 0;
    let mut i = 0;
    while i < tables.len() {
        let mut j = 0;
        while j < tables[i].len() {
            out[n] = tables[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == N, "join_keys: N is not the number of keys");
    out
}

fn cell(s: &str) -> String {
    let s = if s.is_empty() { "" } else { s };
    s.replace('|', "\\|").replace('\n', " ")
}

/// The text of `docs/configuration.md`.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "<!-- Generated by `UPDATE_DOCS=1 cargo test -p ferrosec-config` from \
         crates/config/src/reference/. Do not edit by hand. -->\n\n\
         # Configuration reference\n\n\
         One TOML file holds the whole gateway. The file of SPEC Appendix A \
         (`examples/appendix-a.toml`) shows every object; `ferrosec config check FILE` validates \
         a file and prints its objects and references.\n\n\
         ## Values\n\n\
         - **duration**: a whole number and a unit `s`, `m`, `h`, `d` (`\"30s\"`, `\"5m\"`, \
         `\"8h\"`, `\"1d\"`), or a plain integer of seconds.\n\
         - **size**: a whole number and `B`, `KB`, `MB`, `GB` or `TB` (any case). Units are \
         binary multiples, as PAN-OS and strongSwan count them: 1 KB = 1024 bytes, 1 GB = \
         1073741824 bytes.\n\
         - **prefix**: `10.1.0.0/24`, `2001:db8::/32`; host bits must be zero. A host \
         (`10.1.0.5`) is a /32 or /128.\n\
         - **address set**: a prefix, a host, an inclusive range of one family \
         (`10.0.0.1-10.0.0.9`) or `any`.\n\
         - **SPI**: hex (`\"0x1000\"`) or decimal; 256 and above (0-255 are reserved).\n\
         - **hex key**: `\"0x…\"` (the `0x` and `:` separators are optional).\n\
         - **string or list**: `\"group19\"` or `[\"group19\", \"group14\"]`; lists are in \
         order of preference.\n\
         - **name**: a reference to another object; it must exist, or the error names both \
         objects. Object names are 1-63 letters, digits, `.`, `_`, `-` and inner spaces.\n\
         - **secret**: pre-shared and manual keys are never printed back: not in errors, \
         `Debug` output, logs or summaries.\n\n\
         Unknown keys are errors. Every error names the file position, the object, the field, \
         what is wrong and a fix; all errors of a file are reported together. Warnings (weak \
         algorithms, AH with NAT traversal, aggressive mode, a gateway no tunnel uses, a \
         fail-over monitor without a backup route, anti-replay off) do not stop loading.\n\n\
         Where the seeds are silent, ferrosec chooses: a profile that leaves a list out gets a \
         modern default (shown below) rather than PAN-OS' group2/3des ones, which remain \
         available as the `default` preset; a tunnel interface's MTU defaults to 1400 (room for \
         ESP in UDP over IPv6 on a 1500-byte path, as strongSwan's kernel-libipsec TUN uses); \
         the replay window must be a power of two.\n\n\
         ## Built-in presets\n\n\
         Usable by name as `ike-crypto-profile` and `ipsec-crypto-profile` without being \
         defined (R-CFG-3). `default` matches the profiles a PAN-OS firewall ships; using it \
         warns, as it contains 3des and group2. A profile named `default` in the file replaces \
         the built-in one; the suite names cannot be redefined. PRIME suites are IKEv2 only. \
         RFC 6379 sets no lifetimes: the suites use the PAN-OS defaults. The suites' ECDSA \
         authentication is a gateway matter (`certificate`): RFC 6380 has Suite-B-GCM-128 and \
         PRIME-128 sign with ECDSA P-256, Suite-B-GCM-256 and PRIME-256 with P-384. A gateway \
         whose `ike-crypto-profile` is a suite and whose certificate has another key gets a \
         warning naming the key and the fix (`ferrosec pki cert issue --key ecdsa-p384` makes \
         one that fits).\n\n\
         | preset | IKE encryption | IKE authentication | IKE dh-group | IKE lifetime | ESP encryption | ESP authentication | PFS | ESP lifetime |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for name in presets::PRESET_NAMES {
        let (Some(i), Some(e)) = (presets::ike_preset(name), presets::ipsec_preset(name)) else {
            continue;
        };
        let join = |v: Vec<&str>| v.join(", ");
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            join(i.encryption.iter().map(|x| x.name()).collect()),
            join(i.authentication.iter().map(|x| x.name()).collect()),
            join(i.dh_groups.iter().map(|x| x.name()).collect()),
            format_duration(i.lifetime),
            join(e.encryption.iter().map(|x| x.name()).collect()),
            join(e.authentication.iter().map(|x| x.name()).collect()),
            e.pfs.map_or("no-pfs", |g| g.name()),
            format_duration(e.lifetime),
        );
    }
    if let Some(m) = presets::monitor_preset(presets::DEFAULT) {
        let _ = writeln!(
            out,
            "\nThe monitor profile `default` is built in too: action {}, interval {}, \
             threshold {}.",
            m.action,
            format_duration(m.interval),
            m.threshold
        );
    }
    out.push_str("\n## Objects and keys\n");
    for s in SECTIONS {
        let _ = write!(out, "\n### `{}`\n\n{}\n\n", s.syntax, s.doc);
        out.push_str("| key | type | default | allowed | description | example |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for k in REFERENCE.iter().filter(|k| k.section == s.section) {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | `{}` |",
                k.key,
                cell(k.ty),
                cell(k.default),
                cell(k.allowed),
                cell(k.doc),
                cell(k.example)
            );
        }
    }
    out.push_str(CERTIFICATE_FILES);
    out
}

/// The certificate files section of `docs/configuration.md`, with `config check` examples.
const CERTIFICATE_FILES: &str = r#"
## Certificate files

`ferrosec config check`, the daemon at start and the daemon at reload read the files of every
`certificate` when they load the configuration, and check them at the current time:

- `local`: our certificate first, then its intermediates, in the order they are sent; at most 5
  certificates in all (ours and 4 intermediates, the chain length a peer accepts); ours must
  be valid now;
- `key`: an unencrypted PEM private key, PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1 (`BEGIN RSA
  PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`): RSA 2048–4096 bits or ECDSA P-256, P-384 or
  P-521, and the key of the `local` certificate;
- `ca`: one or more PEM files of CA certificates; an expired one is a warning.

Every problem is an error naming the gateway, the field and the file, with a fix. A valid
certificate gateway (IKEv2):

```
$ ferrosec config check vpn.toml
…
ike-gateway (1)
  branch1: ikev2 198.51.100.1 → 198.51.100.2; auth certificate; profile hq-ike
    local-id dn:O=Example, CN=hq.example.net, peer-id (the subject of its certificate)
…
vpn.toml: configuration is valid
```

The same gateway with `version = "ikev1"` is served too, with IKEv1 RSA or ECDSA signatures
(RFC 2409 §5.1, RFC 4754): see `docs/ikev1-certificates.md`.

Errors (exit status 1), one per problem:

```
vpn.toml:9:25: ike-gateway "branch1": field "certificate.local": cannot read certificate file certs/missing.pem: No such file or directory (os error 2); fix: check the path (a relative path is taken from the configuration file's directory) and that ferrosec may read the file
vpn.toml:9:25: ike-gateway "branch1": field "certificate.local": certs/hq.pem holds no certificate (no -----BEGIN CERTIFICATE----- block); fix: give a PEM file with our certificate first, then its intermediates
vpn.toml:9:47: ike-gateway "branch1": field "certificate.key": certs/hq.key holds no private key: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block; fix: give an unencrypted PEM private key: PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 (BEGIN RSA PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY)
vpn.toml:9:47: ike-gateway "branch1": field "certificate.key": the private key in certs/other.key (ECDSA P-256) does not match the certificate in certs/hq.pem (subject "O=Example, CN=hq.example.net", ECDSA P-256 key); fix: give the key the certificate was issued for (or the certificate issued for this key)
vpn.toml:9:25: ike-gateway "branch1": field "certificate.local": the certificate in certs/hq.pem (subject "CN=hq.example.net") has an RSA 1024-bit key; ferrosec authenticates with RSA 2048–4096 bits and ECDSA P-256, P-384 and P-521; fix: issue the gateway a certificate with an RSA 2048–4096 or ECDSA P-256/P-384/P-521 key
vpn.toml:9:47: ike-gateway "branch1": field "certificate.key": the private key in certs/hq.key is not usable: RSA key smaller than 2048 bits; fix: make an RSA 2048–4096 or ECDSA P-256/P-384/P-521 key and a certificate for it
vpn.toml:9:25: ike-gateway "branch1": field "certificate.local": our certificate in certs/hq.pem (subject "O=Example, CN=hq.example.net") expired on 2025-06-30 00:00:00 UTC (valid from 2024-07-01 00:00:00 UTC to 2025-06-30 00:00:00 UTC); fix: renew the certificate (or, if it is not yet valid, check the system clock)
vpn.toml:9:25: ike-gateway "branch1": field "certificate.local": certs/hq.pem holds 6 certificates (ours and 5 intermediates); a chain has at most 5 (ours and 4 intermediates); fix: shorten the chain: leave out the intermediates the peer does not need (never the root CA, which the peer has)
```

A warning (the configuration loads):

```
warning: vpn.toml:9:68: ike-gateway "branch1": field "certificate.ca": the CA certificate in certs/old-ca.pem (subject "CN=Old CA") expired on 2025-01-01 00:00:00 UTC (valid from 2015-01-01 00:00:00 UTC to 2025-01-01 00:00:00 UTC); peer certificates that chain to it will be refused; fix: replace it with the CA's current certificate, or remove it from ca
```
"#;

#[cfg(test)]
mod tests;
