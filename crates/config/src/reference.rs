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
pub const REFERENCE: &[KeyDoc] = &[
    // file
    KeyDoc {
        section: "file",
        key: "global",
        ty: "table",
        default: "all defaults",
        allowed: "",
        doc: "VPN-wide settings.",
        example: "{ max-half-opened-sa = 1000 }",
    },
    KeyDoc {
        section: "file",
        key: "ike-crypto-profile",
        ty: "tables by name",
        default: "none (presets exist)",
        allowed: "",
        doc: "IKE crypto profiles.",
        example: "{ p2 = { dh-group = [\"group20\"] } }",
    },
    KeyDoc {
        section: "file",
        key: "ipsec-crypto-profile",
        ty: "tables by name",
        default: "none (presets exist)",
        allowed: "",
        doc: "IPSec crypto profiles.",
        example: "{ e2 = { encryption = [\"aes-128-gcm\"], authentication = [\"none\"] } }",
    },
    KeyDoc {
        section: "file",
        key: "ike-gateway",
        ty: "tables by name",
        default: "none",
        allowed: "",
        doc: "IKE gateways.",
        example: "{ gw1 = { peer-address = \"192.0.2.2\", pre-shared-key = \"a long enough key\" } }",
    },
    KeyDoc {
        section: "file",
        key: "tunnel-interface",
        ty: "tables by name",
        default: "none",
        allowed: "names tunnel.1 … tunnel.9999",
        doc: "Tunnel interfaces.",
        example: "{ \"tunnel.1\" = { zone = \"vpn\", address = \"10.1.0.1/24\" } }",
    },
    KeyDoc {
        section: "file",
        key: "ipsec-tunnel",
        ty: "tables by name",
        default: "none",
        allowed: "",
        doc: "IPSec tunnels.",
        example: "{ t1 = { tunnel-interface = \"tunnel.1\", ike-gateway = \"gw1\" } }",
    },
    KeyDoc {
        section: "file",
        key: "monitor-profile",
        ty: "tables by name",
        default: "none (`default` built in)",
        allowed: "",
        doc: "Monitor profiles.",
        example: "{ m1 = { action = \"fail-over\" } }",
    },
    KeyDoc {
        section: "file",
        key: "virtual-router",
        ty: "tables by name",
        default: "`default` (empty)",
        allowed: "",
        doc: "Virtual routers.",
        example: "{ default = { static-route = [] } }",
    },
    KeyDoc {
        section: "file",
        key: "zone",
        ty: "tables by name",
        default: "none",
        allowed: "",
        doc: "Zones.",
        example: "{ vpn = {}, trust = { interfaces = [\"eth1\"] } }",
    },
    KeyDoc {
        section: "file",
        key: "security-rule",
        ty: "array of tables",
        default: "none",
        allowed: "",
        doc: "Security rules, in order.",
        example: "[{ name = \"r\", from = [\"vpn\"], to = [\"trust\"], action = \"deny\" }]",
    },
    // global
    KeyDoc {
        section: "global",
        key: "control-socket",
        ty: "path",
        default: "/run/ferrosec/ferrosec.sock",
        allowed: "non-empty",
        doc: "Unix socket where the CLI talks to the daemon.",
        example: "\"/run/ferrosec/site-a.sock\"",
    },
    KeyDoc {
        section: "global",
        key: "log-file",
        ty: "path",
        default: "none (standard error)",
        allowed: "",
        doc: "The system log (R-OPS-1/3).",
        example: "\"/var/log/ferrosec/system.log\"",
    },
    KeyDoc {
        section: "global",
        key: "cookie-activation-threshold",
        ty: "integer",
        default: "500",
        allowed: "0–65535, below max-half-opened-sa; 0 = always ask for a cookie",
        doc: "Half-open IKE SAs above which the responder asks for a cookie (RFC 7296 §2.6).",
        example: "100",
    },
    KeyDoc {
        section: "global",
        key: "max-half-opened-sa",
        ty: "integer",
        default: "65535",
        allowed: "1–65535",
        doc: "Most half-open IKE SAs kept. At the limit a request still gets a cookie; one that returns a valid cookie takes the slot of a half-open SA older than a second, unless its address let a half-open SA expire in the last 15–30 s.",
        example: "1000",
    },
    KeyDoc {
        section: "global",
        key: "max-half-opened-sa-per-address",
        ty: "integer",
        default: "5",
        allowed: "0–65535; 0 = no per-address limit",
        doc: "Most half-open IKE SAs from one address (strongSwan's block_threshold): a flood from a few real addresses that return every cookie cannot fill the table. Refusals are summarised in the system log every 5 s and counted in `show vpn ike-counters`.",
        example: "10",
    },
    KeyDoc {
        section: "global",
        key: "nat-keepalive-interval",
        ty: DURATION,
        default: "20s",
        allowed: "1s–1h",
        doc: "Interval of NAT-T keepalives (RFC 3948).",
        example: "\"30s\"",
    },
    KeyDoc {
        section: "global",
        key: "fqdn-refresh",
        ty: DURATION,
        default: "5m",
        allowed: "1s–1d",
        doc: "How often a peer-address given as an FQDN is resolved again (in the gateway's \
              address family). It is also resolved before each negotiation the gateway \
              starts and when the peer stops answering, so a peer on dynamic DNS is followed. \
              A new address is used by new negotiations (and a dead peer is restarted \
              there); SAs up keep theirs. A name that does not resolve at start leaves the \
              gateway waiting for it, answering nobody, and is tried again at this interval.",
        example: "\"1m\"",
    },
    KeyDoc {
        section: "global",
        key: "metrics-listen",
        ty: "string",
        default: "none (no metrics)",
        allowed: "an address and a port",
        doc: "Serves Prometheus metrics over HTTP at `/metrics` on this address: IKE SAs by state and version, IPsec SA pairs and traffic per tunnel, negotiations established and failed by reason, rekeys by kind and side, liveness failures, handshake durations, drops by reason, half-open SAs and cookies, tunnel monitors, process and build (the families: [operations.md](operations.md#metrics-r-ops-5)). Bind it to a management address; it has no authentication.",
        example: "\"127.0.0.1:9750\"",
    },
    KeyDoc {
        section: "global",
        key: "allow-key-export",
        ty: "boolean",
        default: "false",
        allowed: "",
        doc: "Lets `ferrosec request vpn export-keys --wireshark DIR` write the keys of the SAs up now as Wireshark's `esp_sa`, `ikev2_decryption_table` and `ikev1_decryption_table` files, to decrypt a capture. Anyone who has those files can read the traffic they cover: switch it on only while debugging. The daemon warns at start while it is on; `show` and the logs never print keys.",
        example: "true",
    },
    // ike-crypto-profile
    KeyDoc {
        section: "ike-crypto-profile",
        key: "dh-group",
        ty: "string or list",
        default: "[\"group19\", \"group14\"]",
        allowed: "group1, group2, group5, group14, group15, group16, group19, group20, group21, group31 (group1/2/5 warn; group31 IKEv2 only)",
        doc: "Diffie-Hellman groups.",
        example: "[\"group20\", \"group14\"]",
    },
    KeyDoc {
        section: "ike-crypto-profile",
        key: "additional-key-exchange",
        ty: "string or list",
        default: "[] (none)",
        allowed: "none, ml-kem-512, ml-kem-768, ml-kem-1024 (IKEv2 only)",
        doc: "Post-quantum hybrid key exchange (RFC 9370): after the Diffie-Hellman of IKE_SA_INIT, one IKE_INTERMEDIATE exchange (RFC 9242) runs ML-KEM and the IKE SA's keys are recomputed from both secrets. The values are alternatives in order of preference for the one additional key exchange; with `none` in the list it is optional (a peer without RFC 9370 still connects), without it the peer must support one of them or the negotiation fails with both sides' proposals in the log. Its large KE payloads travel as IKE fragments when `fragmentation` is on. IKE SA rekeys repeat it (RFC 9370 §2.2.4): after the CREATE_CHILD_SA with the Diffie-Hellman, one IKE_FOLLOWUP_KE exchange per additional key exchange, and the new SA's SKEYSEED derives from the old SK_d and all the new secrets; with `none` in the list a peer that does not offer it for the rekey rekeys classically. Re-authentication repeats the IKE_INTERMEDIATE exchange. `show vpn ike-sa` names it (`group31+ml-kem-768`), and the rekey log line says it ran in IKE_FOLLOWUP_KE.",
        example: "[\"ml-kem-768\"]",
    },
    KeyDoc {
        section: "ike-crypto-profile",
        key: "authentication",
        ty: "string or list",
        default: "[\"sha256\"]",
        allowed: "md5, sha1, sha256, sha384, sha512 (md5 warns)",
        doc: "Integrity and PRF hashes (with GCM only the PRF).",
        example: "[\"sha384\", \"sha256\"]",
    },
    KeyDoc {
        section: "ike-crypto-profile",
        key: "encryption",
        ty: "string or list",
        default: "[\"aes-256-cbc\", \"aes-128-cbc\"]",
        allowed: "des, 3des, aes-128-cbc, aes-192-cbc, aes-256-cbc, aes-128-gcm, aes-256-gcm (des/3des warn; GCM IKEv2 only)",
        doc: "Ciphers.",
        example: "[\"aes-256-gcm\", \"aes-256-cbc\"]",
    },
    KeyDoc {
        section: "ike-crypto-profile",
        key: "lifetime",
        ty: DURATION,
        default: "8h",
        allowed: "3m–365d",
        doc: "IKE SA lifetime; rekeyed before it ends.",
        example: "\"24h\"",
    },
    KeyDoc {
        section: "ike-crypto-profile",
        key: "authentication-multiple",
        ty: "integer",
        default: "0",
        allowed: "0–50; 0 = off; IKEv2 only (an error on an ikev1 gateway when > 0)",
        doc: "IKEv2 re-authentication every lifetime × this (logged as \"re-authenticated\"; `show vpn ike-sa` has the next one).",
        example: "3",
    },
    // ipsec-crypto-profile
    KeyDoc {
        section: "ipsec-crypto-profile",
        key: "protocol",
        ty: "string",
        default: "esp",
        allowed: "esp, ah",
        doc: "ESP, or AH (authentication only; cannot cross NAT).",
        example: "\"esp\"",
    },
    KeyDoc {
        section: "ipsec-crypto-profile",
        key: "encryption",
        ty: "string or list",
        default: "[\"aes-256-gcm\", \"aes-256-cbc\"] (ESP)",
        allowed: "des, 3des, aes-128-cbc, aes-192-cbc, aes-256-cbc, aes-128-ccm, aes-128-gcm, aes-256-gcm, null (des/3des/null warn); ESP only",
        doc: "ESP ciphers.",
        example: "[\"aes-256-gcm\", \"aes-128-gcm\"]",
    },
    KeyDoc {
        section: "ipsec-crypto-profile",
        key: "authentication",
        ty: "string or list",
        default: "[\"sha256\"] (required for AH)",
        allowed: "none, md5, sha1, sha256, sha384, sha512 (md5 warns); none only with GCM/CCM and never for AH",
        doc: "Integrity algorithms.",
        example: "[\"sha384\", \"sha256\"]",
    },
    KeyDoc {
        section: "ipsec-crypto-profile",
        key: "dh-group",
        ty: "string",
        default: "group14",
        allowed: "no-pfs, group1, group2, group5, group14, group15, group16, group19, group20, group21, group31",
        doc: "PFS group; PFS is on by default.",
        example: "\"no-pfs\"",
    },
    KeyDoc {
        section: "ipsec-crypto-profile",
        key: "additional-key-exchange",
        ty: "string or list",
        default: "[] (none)",
        allowed: "none, ml-kem-512, ml-kem-768, ml-kem-1024 (IKEv2 only; needs a dh-group other than no-pfs)",
        doc: "Post-quantum key exchange for Child SAs created or rekeyed with CREATE_CHILD_SA (RFC 9370 §2.2.4): after the PFS Diffie-Hellman of the CREATE_CHILD_SA, one IKE_FOLLOWUP_KE exchange runs ML-KEM, and the Child SA's KEYMAT derives from SK_d, both secrets and the nonces. The values are alternatives in order of preference; with `none` in the list it is optional (a peer without RFC 9370, such as strongSwan 5.9, still rekeys with PFS alone), without it a peer that does not offer it gets NO_PROPOSAL_CHOSEN and the old Child SA stays. As with PFS (and as strongSwan does), the Child SA made in IKE_AUTH has no key exchange of its own (its keys derive from the IKE SA's SK_d, which `additional-key-exchange` on the ike-crypto-profile protects): it applies from the first rekey on. Additional key exchanges follow the PFS key exchange, so `dh-group = \"no-pfs\"` with an ML-KEM value is an error; IKEv1 gateways cannot use it. `show vpn ipsec-sa` names the key exchanges of each pair (`group19+ml-kem-768`; `none` for the IKE_AUTH pair).",
        example: "[\"ml-kem-768\"]",
    },
    KeyDoc {
        section: "ipsec-crypto-profile",
        key: "lifetime",
        ty: DURATION,
        default: "1h",
        allowed: "3m–365d",
        doc: "SA lifetime.",
        example: "\"8h\"",
    },
    KeyDoc {
        section: "ipsec-crypto-profile",
        key: "lifesize",
        ty: SIZE,
        default: "none (no byte limit)",
        allowed: "B, KB, MB, GB, TB (1 KB = 1024 bytes); above 0",
        doc: "SA lifetime in bytes, per direction: the pair is rekeyed at 90 % sent or 95 % received, and an SA stops at 100 %.",
        example: "\"10GB\"",
    },
    KeyDoc {
        section: "ipsec-crypto-profile",
        key: "esn",
        ty: "boolean or string",
        default: "\"either\"",
        allowed: "true, false, \"either\"",
        doc: "Extended (64-bit) sequence numbers (RFC 4304): `true` requires them (a peer that cannot is refused, in words), `false` never offers them, `either` offers them first and takes 32-bit sequence numbers from a peer that will not.",
        example: "true",
    },
    // ike-gateway
    KeyDoc {
        section: "ike-gateway",
        key: "version",
        ty: "string",
        default: "ikev2",
        allowed: "ikev1, ikev2, ikev2-preferred",
        doc: "IKE version; ikev2-preferred tries IKEv2 and falls back to IKEv1.",
        example: "\"ikev2-preferred\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "address-family",
        ty: "string",
        default: "ipv4",
        allowed: "ipv4, ipv6",
        doc: "Family of local-address and peer-address.",
        example: "\"ipv4\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "interface",
        ty: "string",
        default: "none",
        allowed: "a Linux interface name",
        doc: "The outside interface.",
        example: "\"eth0\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "local-address",
        ty: "IP address",
        default: "none (any address of the family)",
        allowed: "of address-family",
        doc: "Address IKE uses locally.",
        example: "\"192.0.2.1\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "peer-address",
        ty: "string",
        default: "required",
        allowed: "an IP address of address-family, an FQDN (re-resolved), or \"dynamic\" (respond only)",
        doc: "The peer.",
        example: "\"peer.example.net\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "pre-shared-key",
        ty: "string (secret)",
        default: "none",
        allowed: "8 characters or more; never printed back",
        doc: "Pre-shared key authentication.",
        example: "\"another long key 42\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "certificate",
        ty: "table",
        default: "none",
        allowed: "see ike-gateway.certificate",
        doc: "Certificate authentication.",
        example: "{ local = \"gw.pem\", key = \"gw.key\", ca = [\"ca.pem\"] }",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "local-id",
        ty: "table",
        default: "none (the local IP address; with certificate, the certificate's subject DN)",
        allowed: "see ike-gateway.local-id",
        doc: "Our identity.",
        example: "{ type = \"fqdn\", value = \"hq.example.net\" }",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "peer-id",
        ty: "table",
        default: "none (the peer's IP address; with certificate, the subject DN of the peer's certificate)",
        allowed: "see ike-gateway.local-id",
        doc: "The identity the peer must present.",
        example: "{ type = \"ufqdn\", value = \"vpn@branch.example.net\" }",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "ike-crypto-profile",
        ty: "name",
        default: "default",
        allowed: "an ike-crypto-profile or a preset (PRIME-* need version ikev2)",
        doc: "The IKE crypto profile.",
        example: "\"Suite-B-GCM-128\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "exchange-mode",
        ty: "string",
        default: "auto",
        allowed: "main, aggressive, auto (= main); IKEv1 only (ikev1, ikev2-preferred)",
        doc: "IKEv1 phase 1 mode.",
        example: "\"main\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "dpd",
        ty: "table",
        default: "on: interval 5s, retry 5",
        allowed: "see ike-gateway.dpd; IKEv1 only",
        doc: "IKEv1 dead peer detection.",
        example: "{ interval = \"10s\", retry = 3 }",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "liveness-interval",
        ty: DURATION,
        default: "5s",
        allowed: "1s–1h; IKEv2 only (ikev2, ikev2-preferred)",
        doc: "IKEv2 liveness check: sent after this long without a message from the peer, retransmitted 8 times at most 2 s apart; the peer is declared dead 18 s after the check (4 s after an INVALID_IKE_SPI answer) and the tunnel negotiated again.",
        example: "\"10s\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "strict-cookie-validation",
        ty: "boolean",
        default: "false",
        allowed: "IKEv2 only",
        doc: "Ask every initiator of this gateway for a cookie (one extra round trip, no state before it). An IKE_SA_INIT request is matched to a gateway by its source address before the cookie: the gateway whose peer-address it is, else the first dynamic gateway; other gateways' peers are not asked.",
        example: "true",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "nat-traversal",
        ty: "boolean",
        default: "false",
        allowed: "",
        doc: "NAT traversal (UDP 4500 encapsulation).",
        example: "true",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "passive-mode",
        ty: "boolean",
        default: "false",
        allowed: "",
        doc: "Never initiate; only respond.",
        example: "true",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "fragmentation",
        ty: "boolean",
        default: "true",
        allowed: "",
        doc: "IKE fragmentation (RFC 7383 for IKEv2): announced in IKE_SA_INIT; when the peer announces it too, protected messages larger than the path (1,280-byte packets) are sent as encrypted fragments, so that certificate chains cross paths that drop IP fragments. IKEv1 gateways use the fragmentation strongSwan, Cisco and PAN-OS speak (the FRAGMENTATION vendor ID, payload 132): phase-1 messages above 1,228 bytes go as unencrypted fragments of the whole message when the peer announced it; the peer's are reassembled (at most 32 fragments, 64 KiB). As strongSwan's default.",
        example: "false",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "config-payload",
        ty: "table",
        default: "none",
        allowed: "see ike-gateway.config-payload; IKEv2 only",
        doc: "The IKEv2 configuration payload: ask the peer for an address (client) or hand addresses out from a pool (server).",
        example: "{ request = true }",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "tcp-encapsulation",
        ty: "string",
        default: "\"no\"",
        allowed: "no, fallback, always; IKEv2 only (version = \"ikev2\")",
        doc: "TCP encapsulation of IKE and ESP (RFC 9329), for paths that block UDP: one TCP stream to the peer's `tcp-port`, opened by us (the initiator) with the \"IKETCP\" prefix, carries IKE and ESP as length-prefixed frames. `always`: TCP only. `fallback`: IKE_SA_INIT goes over UDP first; when it and its first retransmission go unanswered (4 s and 7.2 s with the default back-off), the second retransmission, about 11 s after the first transmission, goes over TCP, and the peer stays on TCP while an IKE SA with it is up (a new negotiation after that tries UDP first again). The daemon listens on TCP `tcp-port` whenever a gateway enables it, and accepts streams only from the peers of such gateways. A TCP-encapsulated SA is handled as behind a NAT (NAT traversal is switched on; no NAT keepalives are sent); a lost stream is reopened by the initiator on the next IKE or ESP packet, at most once a second, and the SAs stay. `show vpn ike-sa` names the transport: udp, udp-encap or tcp.",
        example: "\"fallback\"",
    },
    KeyDoc {
        section: "ike-gateway",
        key: "tcp-port",
        ty: "integer",
        default: "4500",
        allowed: "1–65535; with tcp-encapsulation",
        doc: "The TCP port of TCP encapsulation: the peer's, to connect to, and ours, to listen on.",
        example: "443",
    },
    // ike-gateway.certificate
    KeyDoc {
        section: "ike-gateway.certificate",
        key: "local",
        ty: "path",
        default: "required",
        allowed: "PEM file: our certificate, then up to 4 intermediates",
        doc: "Our certificate, optionally followed by its intermediates (sent in that order). It must be valid now.",
        example: "\"certs/gw.pem\"",
    },
    KeyDoc {
        section: "ike-gateway.certificate",
        key: "key",
        ty: "path",
        default: "required",
        allowed: "PEM file: PKCS#8, PKCS#1 or SEC1, unencrypted; RSA 2048–4096 bits, ECDSA P-256, P-384, P-521",
        doc: "Our private key; it must be the key of the certificate.",
        example: "\"certs/gw.key\"",
    },
    KeyDoc {
        section: "ike-gateway.certificate",
        key: "ca",
        ty: "path or list",
        default: "required",
        allowed: "at least one PEM file",
        doc: "Trusted CA certificates (trust anchors for the peer's certificate). An expired one is a warning.",
        example: "[\"certs/ca.pem\", \"certs/ca2.pem\"]",
    },
    KeyDoc {
        section: "ike-gateway.certificate",
        key: "hash-and-url",
        ty: "URL",
        default: "none",
        allowed: "http://…; IKEv2 only",
        doc: "Where the peer can fetch our DER certificate (hash-and-URL, RFC 7296 §3.6): to a peer that announces HTTP_CERT_LOOKUP_SUPPORTED our certificate goes as its SHA-1 and this URL, which keeps IKE_AUTH short; to other peers it goes whole. Publish the DER file there yourself. Fetching the peer's is `hash-and-url-fetch`.",
        example: "\"http://pki.example.net/gw.der\"",
    },
    KeyDoc {
        section: "ike-gateway.certificate",
        key: "hash-and-url-fetch",
        ty: "boolean",
        default: "false",
        allowed: "IKEv2 only",
        doc: "Fetch the peer's certificate when it sends a hash and URL instead (RFC 7296 §3.6): ferrosec announces HTTP_CERT_LOOKUP_SUPPORTED beside its CERTREQ, and the daemon fetches the DER certificate over HTTP (only http://, never to a loopback, link-local, multicast or unspecified address, at most 16 KiB within 5 s, no redirects) and checks its SHA-1. Off by default: a URL from the peer makes the gateway connect where the peer says.",
        example: "true",
    },
    KeyDoc {
        section: "ike-gateway.certificate",
        key: "crl",
        ty: "path or list",
        default: "none",
        allowed: "PEM (BEGIN X509 CRL) or DER files; X.509 v2 with a nextUpdate, not delta CRLs; each at most 1 MiB",
        doc: "Certificate revocation lists (RFC 5280 §5), read at start and on reload: a peer certificate or intermediate that a CRL of its issuer lists fails authentication, logged as `peer certificate \"CN=…\" serial … revoked by \"CN=CA\" on <date> (reason keyCompromise)`. Each CRL must be signed by one of the `ca` certificates (else an error). One past its nextUpdate is a warning and is still used, as strongSwan does. A certificate for which no CRL is known is accepted (strongSwan's default policy).",
        example: "[\"certs/ca.crl\"]",
    },
    KeyDoc {
        section: "ike-gateway.certificate",
        key: "crl-fetch",
        ty: "boolean",
        default: "false",
        allowed: "IKEv2 only",
        doc: "Fetch the CRLs named by the http:// CRL distribution points of the peer's certificates (when no `crl` file of their issuer is configured), with the fences of `hash-and-url-fetch` (only http://, never a loopback, link-local, multicast or unspecified address, no redirects, at most 1 MiB within 5 s). The IKE_AUTH waits for the fetch, so a revoked certificate is refused the first time. A CRL must be signed by the certificate that issued the one naming it; it is kept until its nextUpdate (at most 16 distribution points remembered). A failed fetch is logged with the URL and the certificate is accepted (strongSwan's default policy); that URL is not tried again for 5 minutes. See docs/operations.md.",
        example: "true",
    },
    // ike-gateway.local-id
    KeyDoc {
        section: "ike-gateway.local-id",
        key: "type",
        ty: "string",
        default: "required",
        allowed: "ipaddr, fqdn, ufqdn, keyid, dn",
        doc: "Identity type.",
        example: "\"fqdn\"",
    },
    KeyDoc {
        section: "ike-gateway.local-id",
        key: "value",
        ty: "string",
        default: "required",
        allowed: "an address (ipaddr), a domain name (fqdn), user@domain (ufqdn), a DN with '=' (dn), any text (keyid)",
        doc: "Identity value.",
        example: "\"hq.example.net\"",
    },
    // ike-gateway.config-payload
    KeyDoc {
        section: "ike-gateway.config-payload",
        key: "request",
        ty: "boolean",
        default: "false",
        allowed: "not with pool; the gateway must initiate (peer-address not dynamic, passive-mode off)",
        doc: "Client: ask for an address (INTERNAL_IP4_ADDRESS and INTERNAL_IP6_ADDRESS for the families of the tunnels' local selectors), DNS servers and subnets in IKE_AUTH; after the first answer it asks for the address it had. A refusal (INTERNAL_ADDRESS_FAILURE, FAILED_CP_REQUIRED) is logged in words and the IKE SA is deleted, to be tried again. Leave out proxy-id (or use local = \"0.0.0.0/0\"): the local side is narrowed to the address assigned.",
        example: "true",
    },
    KeyDoc {
        section: "ike-gateway.config-payload",
        key: "pool",
        ty: "prefix or list",
        default: "none",
        allowed: "at most one IPv4 and one IPv6 prefix; IPv4 without its network and broadcast address (a /31 or /32 whole), IPv6 without its first address; at most 65,536 addresses each are handed out",
        doc: "Server: the addresses handed out. It must not overlap the local side of the gateway's proxy IDs, another gateway's pool, a route through a physical interface or another tunnel interface's address; the remote side of a proxy ID must hold it.",
        example: "[\"10.9.0.0/24\", \"fd09::/112\"]",
    },
    KeyDoc {
        section: "ike-gateway.config-payload",
        key: "dns",
        ty: "address or list",
        default: "none",
        allowed: "IPv4 or IPv6 addresses outside the pool; server only",
        doc: "Server: DNS servers handed out (INTERNAL_IP4_DNS, INTERNAL_IP6_DNS).",
        example: "[\"10.1.0.53\"]",
    },
    KeyDoc {
        section: "ike-gateway.config-payload",
        key: "subnets",
        ty: "prefix or list",
        default: "none",
        allowed: "prefixes that do not overlap the pool; server only",
        doc: "Server: the networks behind this gateway, handed out (INTERNAL_IP4_SUBNET, INTERNAL_IP6_SUBNET); a ferrosec client routes them into its tunnel interface.",
        example: "[\"10.1.0.0/24\"]",
    },
    KeyDoc {
        section: "ike-gateway.config-payload",
        key: "required",
        ty: "boolean",
        default: "false",
        allowed: "server only",
        doc: "Server: refuse a peer whose IKE_AUTH carries no configuration payload request, with FAILED_CP_REQUIRED (the IKE SA gets no IPsec SA) and a log line naming the peer. Off: such a peer is served as a site-to-site peer.",
        example: "true",
    },
    // ike-gateway.dpd
    KeyDoc {
        section: "ike-gateway.dpd",
        key: "enable",
        ty: "boolean",
        default: "true",
        allowed: "",
        doc: "Turn DPD on or off.",
        example: "false",
    },
    KeyDoc {
        section: "ike-gateway.dpd",
        key: "interval",
        ty: DURATION,
        default: "5s",
        allowed: "2s–100s",
        doc: "Idle time before an R-U-THERE.",
        example: "\"10s\"",
    },
    KeyDoc {
        section: "ike-gateway.dpd",
        key: "retry",
        ty: "integer",
        default: "5",
        allowed: "2–100",
        doc: "Unanswered R-U-THEREs before the peer is declared dead.",
        example: "3",
    },
    // tunnel-interface
    KeyDoc {
        section: "tunnel-interface",
        key: "zone",
        ty: "name",
        default: "none (a zone must list it then)",
        allowed: "a zone",
        doc: "Its zone.",
        example: "\"vpn\"",
    },
    KeyDoc {
        section: "tunnel-interface",
        key: "virtual-router",
        ty: "name",
        default: "default",
        allowed: "a virtual-router (default always exists)",
        doc: "Its virtual router.",
        example: "\"default\"",
    },
    KeyDoc {
        section: "tunnel-interface",
        key: "address",
        ty: "string or list",
        default: "none",
        allowed: "address/prefix-length; at most one IPv4 and one IPv6",
        doc: "Needed only for monitoring or dynamic routing.",
        example: "[\"169.254.0.1/30\", \"fd00::1/64\"]",
    },
    KeyDoc {
        section: "tunnel-interface",
        key: "mtu",
        ty: "integer",
        default: "1400",
        allowed: "576–9216 (1280–9216 with an IPv6 address)",
        doc: "The device's largest MTU. While the tunnel has SAs, the device's MTU is lowered to \
              what every one of them carries without fragmenting its outer packet (the path \
              MTU to the peer, from the route or the interface it leaves by, less the outer \
              IP header, UDP when encapsulated, ESP or AH header, IV, padding and ICV), but not \
              below 1280, so that IPv6 stays on the device. A packet with DF set that is too \
              big then gets ICMP \"fragmentation needed\" (IPv6: \"packet too big\") naming \
              that MTU from the gateway, as on any router interface. `show vpn tunnel` shows \
              the MTU in force.",
        example: "1380",
    },
    KeyDoc {
        section: "tunnel-interface",
        key: "tcp-mss-clamp",
        ty: "string or integer",
        default: "off (absent)",
        allowed: "\"auto\", or an MSS of 536–9176",
        doc: "Lowers (never raises) the MSS option of TCP SYNs crossing the tunnel, both ways, \
              so that hosts send segments the tunnel carries whole even where ICMP is \
              filtered. \"auto\": the device's current MTU less 40 (IPv6: 60); a number is the \
              IPv4 MSS, 20 less for IPv6. The TCP checksum is updated in place. Applied by a \
              reload without touching SAs.",
        example: "\"auto\"",
    },
    // ipsec-tunnel
    KeyDoc {
        section: "ipsec-tunnel",
        key: "tunnel-interface",
        ty: "name",
        default: "required",
        allowed: "a tunnel-interface",
        doc: "The interface the tunnel is bound to.",
        example: "\"tunnel.1\"",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "type",
        ty: "string",
        default: "auto-key",
        allowed: "auto-key, manual-key",
        doc: "Keys by IKE or static keys.",
        example: "\"auto-key\"",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "ike-gateway",
        ty: "name",
        default: "required for auto-key",
        allowed: "an ike-gateway; not with manual-key",
        doc: "The gateway that negotiates the SAs.",
        example: "\"gw1\"",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "ipsec-crypto-profile",
        ty: "name",
        default: "default",
        allowed: "an ipsec-crypto-profile or a preset; not with manual-key",
        doc: "The IPSec crypto profile.",
        example: "\"Suite-B-GCM-256\"",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "anti-replay",
        ty: "boolean",
        default: "true",
        allowed: "",
        doc: "Anti-replay check (off warns).",
        example: "true",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "replay-window",
        ty: "integer",
        default: "1024",
        allowed: "a power of two, 64–1048576",
        doc: "Anti-replay window in packets.",
        example: "4096",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "establish",
        ty: "string",
        default: "\"on-demand\"",
        allowed: "on-demand, always",
        doc: "When the tunnel is negotiated: `on-demand` when the first packet needs it; `always` at start and again after any loss (the peer's delete, a dead peer, the tunnel monitor), retried with back-off from 2 s to 60 s. Only a gateway that may initiate (not passive, a known peer address) brings a tunnel up.",
        example: "\"always\"",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "proxy-id",
        ty: "list of tables",
        default: "none (0.0.0.0/0 and ::/0 both ways)",
        allowed: "see ipsec-tunnel.proxy-id",
        doc: "Traffic selectors.",
        example: "[{ name = \"lan\", local = \"10.1.0.0/24\", remote = \"10.2.0.0/24\" }]",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "tunnel-monitor",
        ty: "table",
        default: "none (off)",
        allowed: "see ipsec-tunnel.tunnel-monitor",
        doc: "Tunnel monitoring.",
        example: "{ destination = \"10.2.0.1\", source = \"10.1.0.1\" }",
    },
    KeyDoc {
        section: "ipsec-tunnel",
        key: "manual-key",
        ty: "table",
        default: "required for manual-key",
        allowed: "see ipsec-tunnel.manual-key; not with auto-key",
        doc: "Static SAs.",
        example: "{ local-spi = \"0x1100\", remote-spi = \"0x2000\", encryption = \"aes-256-gcm\", encryption-key = \"0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f00010203\", local-address = \"192.0.2.1\", peer-address = \"192.0.2.2\" }",
    },
    // proxy-id
    KeyDoc {
        section: "ipsec-tunnel.proxy-id",
        key: "name",
        ty: "string",
        default: "required",
        allowed: "unique in the tunnel",
        doc: "Its name.",
        example: "\"web\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.proxy-id",
        key: "local",
        ty: "address set",
        default: "required",
        allowed: "prefix (10.1.0.0/24), host (10.1.0.5), range (10.1.0.1-10.1.0.9) or any; same family as remote",
        doc: "Local side.",
        example: "\"10.1.0.0/24\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.proxy-id",
        key: "remote",
        ty: "address set",
        default: "required",
        allowed: "as local",
        doc: "Remote side.",
        example: "\"10.2.0.1-10.2.0.9\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.proxy-id",
        key: "protocol",
        ty: "string or integer",
        default: "any",
        allowed: "any, tcp, udp, icmp, icmpv6 or 0–255",
        doc: "IP protocol.",
        example: "\"tcp\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.proxy-id",
        key: "local-port",
        ty: "integer or string",
        default: "0 (any)",
        allowed: "0–65535 or \"1000-2000\"; only with tcp/udp",
        doc: "Local port(s).",
        example: "443",
    },
    KeyDoc {
        section: "ipsec-tunnel.proxy-id",
        key: "remote-port",
        ty: "integer or string",
        default: "0 (any)",
        allowed: "as local-port",
        doc: "Remote port(s).",
        example: "\"8000-8080\"",
    },
    // tunnel-monitor
    KeyDoc {
        section: "ipsec-tunnel.tunnel-monitor",
        key: "destination",
        ty: "IP address",
        default: "required",
        allowed: "",
        doc: "Address pinged across the tunnel.",
        example: "\"10.2.0.1\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.tunnel-monitor",
        key: "source",
        ty: "IP address",
        default: "the tunnel interface's address of the family",
        allowed: "same family as destination",
        doc: "Source of the pings.",
        example: "\"10.1.0.1\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.tunnel-monitor",
        key: "profile",
        ty: "name",
        default: "default",
        allowed: "a monitor-profile or default",
        doc: "What to do on failure.",
        example: "\"default\"",
    },
    // manual-key
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "local-spi",
        ty: "SPI",
        default: "required",
        allowed: "\"0x100\"–\"0xffffffff\" or 256–4294967295; unique per protocol",
        doc: "SPI of inbound packets.",
        example: "\"0x3000\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "remote-spi",
        ty: "SPI",
        default: "required",
        allowed: "as local-spi",
        doc: "SPI of outbound packets.",
        example: "12288",
    },
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "protocol",
        ty: "string",
        default: "esp",
        allowed: "esp, ah",
        doc: "IPsec protocol.",
        example: "\"esp\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "encryption",
        ty: "string",
        default: "required for ESP",
        allowed: "an ESP cipher of ipsec-crypto-profile; not with AH",
        doc: "Cipher.",
        example: "\"aes-128-cbc\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "encryption-key",
        ty: "hex (secret)",
        default: "required unless null",
        allowed: "des 8, 3des 24, aes-128-cbc 16, aes-192-cbc 24, aes-256-cbc 32, aes-128-ccm 19, aes-128-gcm 20, aes-256-gcm 36 bytes",
        doc: "Cipher key (with salt for CCM/GCM).",
        example: "\"0xffeeddccbbaa99887766554433221100\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "authentication",
        ty: "string",
        default: "none with GCM/CCM, else required",
        allowed: "none, md5, sha1, sha256, sha384, sha512; none only with GCM/CCM",
        doc: "Integrity algorithm.",
        example: "\"sha256\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "authentication-key",
        ty: "hex (secret)",
        default: "required unless none",
        allowed: "md5 16, sha1 20, sha256 32, sha384 48, sha512 64 bytes",
        doc: "Integrity key.",
        example: "\"0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "local-address",
        ty: "IP address",
        default: "required",
        allowed: "same family as peer-address",
        doc: "Our outer address.",
        example: "\"192.0.2.1\"",
    },
    KeyDoc {
        section: "ipsec-tunnel.manual-key",
        key: "peer-address",
        ty: "IP address",
        default: "required",
        allowed: "",
        doc: "The peer's outer address.",
        example: "\"192.0.2.2\"",
    },
    // monitor-profile
    KeyDoc {
        section: "monitor-profile",
        key: "interval",
        ty: DURATION,
        default: "3s",
        allowed: "1s–60s",
        doc: "Time between pings.",
        example: "\"2s\"",
    },
    KeyDoc {
        section: "monitor-profile",
        key: "threshold",
        ty: "integer",
        default: "5",
        allowed: "1–100",
        doc: "Missed pings before the action.",
        example: "3",
    },
    KeyDoc {
        section: "monitor-profile",
        key: "action",
        ty: "string",
        default: "wait-recover",
        allowed: "wait-recover, fail-over",
        doc: "wait-recover renegotiates and waits; fail-over moves traffic to the route with the next-higher metric (warns when there is none).",
        example: "\"wait-recover\"",
    },
    // virtual-router
    KeyDoc {
        section: "virtual-router",
        key: "interfaces",
        ty: "string or list",
        default: "[]",
        allowed: "physical interface names, each in one virtual router; not tunnel interfaces (they name their router)",
        doc: "Its physical members: packets arriving on them are routed by this router's table, and its static routes may leave by them. Ignored for `default`, which holds every interface that no other router lists.",
        example: "[\"eth2\"]",
    },
    KeyDoc {
        section: "virtual-router",
        key: "routing-table",
        ty: "integer",
        default: "main (254) for default; else 1000–64999 derived from the name",
        allowed: "1–252 or 256–4294967295, one per router; default must keep the main table",
        doc: "The host routing table (`ip route show table N`) that holds its routes. Set it when the derived number is taken by something else on the host.",
        example: "1001",
    },
    KeyDoc {
        section: "virtual-router",
        key: "static-route",
        ty: "list of tables",
        default: "none",
        allowed: "see virtual-router.static-route",
        doc: "Static routes.",
        example: "[{ name = \"r9\", destination = \"10.9.0.0/16\", interface = \"tunnel.1\" }]",
    },
    KeyDoc {
        section: "virtual-router.static-route",
        key: "name",
        ty: "string",
        default: "required",
        allowed: "unique in the virtual router",
        doc: "Its name.",
        example: "\"to-lan\"",
    },
    KeyDoc {
        section: "virtual-router.static-route",
        key: "destination",
        ty: "prefix",
        default: "required",
        allowed: "IPv4 or IPv6 prefix, host bits zero",
        doc: "Destination.",
        example: "\"10.20.0.0/16\"",
    },
    KeyDoc {
        section: "virtual-router.static-route",
        key: "interface",
        ty: "name",
        default: "required",
        allowed: "a tunnel interface of this virtual router, or a physical interface of this virtual router (a zone's or gateway's interface for default; one of `interfaces` for the others)",
        doc: "Outgoing interface.",
        example: "\"tunnel.1\"",
    },
    KeyDoc {
        section: "virtual-router.static-route",
        key: "next-hop",
        ty: "IP address",
        default: "none",
        allowed: "same family as destination",
        doc: "Next hop (not needed via a tunnel).",
        example: "\"169.254.0.2\"",
    },
    KeyDoc {
        section: "virtual-router.static-route",
        key: "metric",
        ty: "integer",
        default: "10",
        allowed: "1–65535",
        doc: "Lower wins; the next-higher is the fail-over backup.",
        example: "20",
    },
    // zone
    KeyDoc {
        section: "zone",
        key: "interfaces",
        ty: "string or list",
        default: "[]",
        allowed: "tunnel interfaces of the file or physical interface names; each in one zone",
        doc: "Members.",
        example: "[\"tunnel.1\"]",
    },
    // security-rule
    KeyDoc {
        section: "security-rule",
        key: "name",
        ty: "string",
        default: "required",
        allowed: "unique",
        doc: "Its name.",
        example: "\"web-in\"",
    },
    KeyDoc {
        section: "security-rule",
        key: "description",
        ty: "string",
        default: "none",
        allowed: "",
        doc: "Free text.",
        example: "\"branch users to the intranet\"",
    },
    KeyDoc {
        section: "security-rule",
        key: "disabled",
        ty: "boolean",
        default: "false",
        allowed: "",
        doc: "A disabled rule never matches.",
        example: "true",
    },
    KeyDoc {
        section: "security-rule",
        key: "from",
        ty: "string or list",
        default: "required",
        allowed: "zones, or \"any\" alone",
        doc: "Source zones.",
        example: "[\"trust\", \"vpn\"]",
    },
    KeyDoc {
        section: "security-rule",
        key: "to",
        ty: "string or list",
        default: "required",
        allowed: "zones, or \"any\" alone",
        doc: "Destination zones.",
        example: "\"any\"",
    },
    KeyDoc {
        section: "security-rule",
        key: "source",
        ty: "string or list",
        default: "any",
        allowed: "prefixes, hosts, ranges, any",
        doc: "Source addresses.",
        example: "[\"10.1.0.0/24\", \"10.1.1.1-10.1.1.9\"]",
    },
    KeyDoc {
        section: "security-rule",
        key: "destination",
        ty: "string or list",
        default: "any",
        allowed: "prefixes, hosts, ranges, any",
        doc: "Destination addresses.",
        example: "\"10.2.0.5\"",
    },
    KeyDoc {
        section: "security-rule",
        key: "service",
        ty: "string or list",
        default: "any",
        allowed: "any, tcp/PORTS, udp/PORTS (PORTS: 443 or 8000-8080)",
        doc: "Services.",
        example: "[\"tcp/443\", \"udp/53\"]",
    },
    KeyDoc {
        section: "security-rule",
        key: "action",
        ty: "string",
        default: "required",
        allowed: "allow, deny",
        doc: "What to do.",
        example: "\"deny\"",
    },
];

fn cell(s: &str) -> String {
    let s = if s.is_empty() { "" } else { s };
    s.replace('|', "\\|").replace('\n', " ")
}

/// The text of `docs/configuration.md`.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "<!-- Generated by `UPDATE_DOCS=1 cargo test -p ferrosec-config` from \
         crates/config/src/reference.rs. Do not edit by hand. -->\n\n\
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
mod tests {
    use std::collections::BTreeSet;
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{self, Visitor};

    use super::*;
    use crate::algo::{
        AddressFamily, DhGroup, EspEncryption, ExchangeMode, HashAlgorithm, IdType, IkeEncryption,
        IkeVersion, IpsecAuthentication, IpsecProtocol, MonitorAction, RuleAction, TunnelType,
    };
    use crate::raw::*;

    /// A deserializer that only records the field list a derived `Deserialize` asks for.
    struct FieldProbe;

    #[derive(Debug)]
    struct Fields(Vec<&'static str>);

    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    impl std::error::Error for Fields {}

    impl de::Error for Fields {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Fields(Vec::new())
        }
    }

    impl<'de> de::Deserializer<'de> for FieldProbe {
        type Error = Fields;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(Vec::new()))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields.to_vec()))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    fn fields_of<T: for<'de> Deserialize<'de>>() -> BTreeSet<&'static str> {
        match T::deserialize(FieldProbe) {
            Err(Fields(f)) => f.into_iter().collect(),
            Ok(_) => unreachable!("the probe never yields a value"),
        }
    }

    fn accepted_keys() -> Vec<(&'static str, BTreeSet<&'static str>)> {
        vec![
            ("file", fields_of::<RawRoot>()),
            ("global", fields_of::<RawGlobal>()),
            ("ike-crypto-profile", fields_of::<RawIkeProfile>()),
            ("ipsec-crypto-profile", fields_of::<RawIpsecProfile>()),
            ("ike-gateway", fields_of::<RawGateway>()),
            ("ike-gateway.certificate", fields_of::<RawCertificate>()),
            ("ike-gateway.local-id", fields_of::<RawId>()),
            ("ike-gateway.dpd", fields_of::<RawDpd>()),
            (
                "ike-gateway.config-payload",
                fields_of::<RawConfigPayload>(),
            ),
            ("tunnel-interface", fields_of::<RawTunnelInterface>()),
            ("ipsec-tunnel", fields_of::<RawIpsecTunnel>()),
            ("ipsec-tunnel.proxy-id", fields_of::<RawProxyId>()),
            (
                "ipsec-tunnel.tunnel-monitor",
                fields_of::<RawTunnelMonitor>(),
            ),
            ("ipsec-tunnel.manual-key", fields_of::<RawManualKey>()),
            ("monitor-profile", fields_of::<RawMonitorProfile>()),
            ("virtual-router", fields_of::<RawVirtualRouter>()),
            ("virtual-router.static-route", fields_of::<RawStaticRoute>()),
            ("zone", fields_of::<RawZone>()),
            ("security-rule", fields_of::<RawSecurityRule>()),
        ]
    }

    #[test]
    fn the_table_lists_exactly_the_keys_the_parser_accepts() {
        let accepted = accepted_keys();
        let sections: BTreeSet<_> = SECTIONS.iter().map(|s| s.section).collect();
        let probed: BTreeSet<_> = accepted.iter().map(|(s, _)| *s).collect();
        assert_eq!(sections, probed, "SECTIONS and the raw structs disagree");
        for (section, keys) in &accepted {
            assert!(!keys.is_empty(), "{section}: probe found no fields");
            let documented: BTreeSet<&str> = REFERENCE
                .iter()
                .filter(|k| k.section == *section)
                .map(|k| k.key)
                .collect();
            let undocumented: Vec<_> = keys.difference(&documented).collect();
            let unknown: Vec<_> = documented.difference(keys).collect();
            assert!(
                undocumented.is_empty() && unknown.is_empty(),
                "section {section}: keys the parser accepts but REFERENCE lacks: \
                 {undocumented:?}; keys REFERENCE lists but the parser refuses: {unknown:?}"
            );
        }
        let mut seen = BTreeSet::new();
        for k in REFERENCE {
            assert!(
                seen.insert((k.section, k.key)),
                "{}.{} listed twice",
                k.section,
                k.key
            );
        }
    }

    #[test]
    fn keywords_the_parser_accepts_are_documented() {
        let check = |section: &str, key: &str, names: &[&str]| {
            let doc = REFERENCE
                .iter()
                .find(|k| k.section == section && k.key == key)
                .unwrap_or_else(|| panic!("{section}.{key} missing"));
            for n in names {
                let listed = doc
                    .allowed
                    .split([',', ' ', '(', ')', ';'])
                    .any(|w| w == *n);
                assert!(
                    listed,
                    "{section}.{key}: \"{n}\" is accepted but not in allowed"
                );
            }
        };
        check("ike-crypto-profile", "dh-group", DhGroup::NAMES);
        check(
            "ike-crypto-profile",
            "additional-key-exchange",
            crate::algo::AdditionalKeyExchange::NAMES,
        );
        check("ike-crypto-profile", "authentication", HashAlgorithm::NAMES);
        check("ike-crypto-profile", "encryption", IkeEncryption::NAMES);
        check("ipsec-crypto-profile", "protocol", IpsecProtocol::NAMES);
        check("ipsec-crypto-profile", "encryption", EspEncryption::NAMES);
        check(
            "ipsec-crypto-profile",
            "authentication",
            IpsecAuthentication::NAMES,
        );
        check("ipsec-crypto-profile", "dh-group", DhGroup::NAMES);
        check("ipsec-crypto-profile", "dh-group", &["no-pfs"]);
        check("ike-gateway", "version", IkeVersion::NAMES);
        check("ike-gateway", "address-family", AddressFamily::NAMES);
        check("ike-gateway", "exchange-mode", ExchangeMode::NAMES);
        check("ike-gateway.local-id", "type", IdType::NAMES);
        check("ipsec-tunnel", "type", TunnelType::NAMES);
        check(
            "ipsec-tunnel.proxy-id",
            "protocol",
            crate::value::Protocol::NAMES,
        );
        check("ipsec-tunnel.manual-key", "protocol", IpsecProtocol::NAMES);
        check(
            "ipsec-tunnel.manual-key",
            "authentication",
            IpsecAuthentication::NAMES,
        );
        check("monitor-profile", "action", MonitorAction::NAMES);
        check("security-rule", "action", RuleAction::NAMES);
        for e in EspEncryption::ALL {
            let doc = REFERENCE
                .iter()
                .find(|k| k.key == "encryption-key")
                .unwrap();
            let want = format!("{} {}", e.name(), e.manual_key_len());
            assert!(
                *e == EspEncryption::Null || doc.allowed.contains(&want),
                "encryption-key length of {e} is not documented as {want}"
            );
        }
        for h in HashAlgorithm::ALL {
            let doc = REFERENCE
                .iter()
                .find(|k| k.key == "authentication-key")
                .unwrap();
            assert!(
                doc.allowed
                    .contains(&format!("{} {}", h.name(), h.key_len()))
            );
        }
    }

    /// A valid file per section, and where in it the section's table is.
    fn base_for(section: &str) -> (String, Vec<&'static str>) {
        let base = r#"
[ike-crypto-profile.p1]
[ipsec-crypto-profile.e1]
[ike-gateway.gw1]
version = "ikev2-preferred"
local-address = "192.0.2.1"
peer-address = "192.0.2.2"
certificate = { local = "gw.pem", key = "gw.key", ca = ["ca.pem"] }
local-id = { type = "fqdn", value = "a.example.net" }
dpd = { interval = "5s" }
[tunnel-interface."tunnel.1"]
zone = "vpn"
address = "10.1.0.1/24"
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw1"
proxy-id = [{ name = "lan", local = "10.1.0.0/24", remote = "10.2.0.0/24", protocol = "tcp" }]
tunnel-monitor = { destination = "10.2.0.1" }
[ipsec-tunnel.mk]
tunnel-interface = "tunnel.1"
type = "manual-key"
manual-key = { local-spi = "0x1000", remote-spi = "0x2000", encryption = "aes-128-cbc", encryption-key = "0x000102030405060708090a0b0c0d0e0f", authentication = "sha256", authentication-key = "0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f", local-address = "192.0.2.1", peer-address = "192.0.2.3" }
[monitor-profile.m1]
[virtual-router.default]
static-route = [{ name = "r1", destination = "10.2.0.0/24", interface = "tunnel.1" }]
[zone.vpn]
[zone.trust]
interfaces = ["eth1"]
[[security-rule]]
name = "r1"
from = ["trust"]
to = ["vpn"]
action = "allow"
"#;
        let path: Vec<&'static str> = match section {
            "file" => vec![],
            "global" => vec!["global"],
            "ike-crypto-profile" => vec!["ike-crypto-profile", "p1"],
            "ipsec-crypto-profile" => vec!["ipsec-crypto-profile", "e1"],
            "ike-gateway" => vec!["ike-gateway", "gw1"],
            "ike-gateway.certificate" => vec!["ike-gateway", "gw1", "certificate"],
            "ike-gateway.local-id" => vec!["ike-gateway", "gw1", "local-id"],
            "ike-gateway.dpd" => vec!["ike-gateway", "gw1", "dpd"],
            "ike-gateway.config-payload" => {
                // An IKEv2 server: the pool the other keys go beside.
                let base = base
                    .replace("version = \"ikev2-preferred\"", "version = \"ikev2\"")
                    .replace("dpd = { interval = \"5s\" }", "")
                    .replace(
                        "[tunnel-interface.",
                        "config-payload = { pool = \"10.9.0.0/24\" }\n[tunnel-interface.",
                    )
                    .replace(
                        "remote = \"10.2.0.0/24\", protocol",
                        "remote = \"any\", protocol",
                    );
                return (base, vec!["ike-gateway", "gw1", "config-payload"]);
            }
            "tunnel-interface" => vec!["tunnel-interface", "tunnel.1"],
            "ipsec-tunnel" => vec!["ipsec-tunnel", "t1"],
            "ipsec-tunnel.proxy-id" => vec!["ipsec-tunnel", "t1", "proxy-id", "0"],
            "ipsec-tunnel.tunnel-monitor" => vec!["ipsec-tunnel", "t1", "tunnel-monitor"],
            "ipsec-tunnel.manual-key" => vec!["ipsec-tunnel", "mk", "manual-key"],
            "monitor-profile" => vec!["monitor-profile", "m1"],
            "virtual-router" => vec!["virtual-router", "default"],
            "virtual-router.static-route" => {
                vec!["virtual-router", "default", "static-route", "0"]
            }
            "zone" => vec!["zone", "vpn"],
            "security-rule" => vec!["security-rule", "0"],
            other => panic!("no base for section {other}"),
        };
        (base.to_owned(), path)
    }

    /// The keys whose example needs the base adjusted first: (section, key, keys to remove).
    fn conflicts(section: &str, key: &str) -> &'static [&'static str] {
        match (section, key) {
            ("ike-gateway", "pre-shared-key") => &["certificate"],
            ("ipsec-tunnel", "manual-key") => &["ike-gateway"],
            ("ike-gateway", "config-payload") => &["version", "dpd"],
            ("ike-gateway.config-payload", "request") => &["pool"],
            _ => &[],
        }
    }

    fn table_at<'t>(root: &'t mut toml::Table, path: &[&str]) -> &'t mut toml::Table {
        let mut cur = root;
        for (i, p) in path.iter().enumerate() {
            let v = if let Ok(idx) = p.parse::<usize>() {
                unreachable!("index {idx} handled by the caller")
            } else {
                cur.entry((*p).to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            };
            let next = path.get(i + 1).and_then(|n| n.parse::<usize>().ok());
            cur = match (v, next) {
                (toml::Value::Array(a), Some(idx)) => match &mut a[idx] {
                    toml::Value::Table(t) => {
                        return table_at(t, &path[i + 2..]);
                    }
                    _ => panic!("not a table"),
                },
                (toml::Value::Table(t), _) => t,
                _ => panic!("path {path:?} is not a table"),
            };
        }
        cur
    }

    #[test]
    fn every_example_value_loads() {
        for s in SECTIONS {
            let (text, _) = base_for(s.section);
            if let Err(e) = crate::load_str(&text, "base.toml") {
                panic!("the base for {} does not load: {e}", s.section);
            }
        }
        for k in REFERENCE {
            let (text, mut path) = base_for(k.section);
            if (k.section, k.key) == ("virtual-router", "interfaces")
                || (k.section, k.key) == ("virtual-router", "routing-table")
            {
                // A router of its own: `default` keeps the main table and every interface.
                path = vec!["virtual-router", "red"];
            }
            let mut root: toml::Table = toml::from_str(&text).unwrap();
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {}", k.example))
                .unwrap_or_else(|e| panic!("{}.{} example is not TOML: {e}", k.section, k.key))
                .remove("v")
                .unwrap();
            let table = table_at(&mut root, &path);
            for c in conflicts(k.section, k.key) {
                table.remove(*c);
            }
            if (k.section, k.key) == ("ipsec-tunnel", "manual-key") {
                table.insert("type".into(), toml::Value::String("manual-key".into()));
            }
            if (k.section, k.key) == ("ike-gateway", "tcp-encapsulation") {
                // IKEv2 only (the base gateway is ikev2-preferred, the default).
                table.insert("version".into(), toml::Value::String("ikev2".into()));
                table.remove("dpd");
                table.remove("exchange-mode");
            }
            if k.section == "file" {
                // Whole objects: add the example's entries next to the base's.
                match (table.get_mut(k.key), value) {
                    (Some(toml::Value::Table(t)), toml::Value::Table(v)) => {
                        for (name, obj) in v {
                            t.insert(name, obj);
                        }
                    }
                    (Some(toml::Value::Array(a)), toml::Value::Array(v)) => a.extend(v),
                    (_, v) => {
                        table.insert(k.key.to_owned(), v);
                    }
                }
            } else {
                table.insert(k.key.to_owned(), value);
            }
            let edited = toml::to_string(&root).unwrap();
            if let Err(e) = crate::load_str(&edited, "example.toml") {
                panic!(
                    "{}.{} = {} does not load:\n{e}\n---\n{edited}",
                    k.section, k.key, k.example
                );
            }
        }
    }

    #[test]
    fn documented_defaults_are_what_the_loader_fills_in() {
        let l = crate::load_str(
            r#"
[ike-crypto-profile.p1]
[ipsec-crypto-profile.e1]
[ike-gateway.gw1]
version = "ikev2-preferred"
peer-address = "192.0.2.2"
pre-shared-key = "a long enough key"
ike-crypto-profile = "p1"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw1"
ipsec-crypto-profile = "e1"
[monitor-profile.m1]
[virtual-router.default]
static-route = [{ name = "r1", destination = "10.2.0.0/24", interface = "tunnel.1" }]
[zone.vpn]
"#,
            "defaults.toml",
        )
        .unwrap();
        let c = &l.config;
        let doc = |section: &str, key: &str| -> &'static str {
            REFERENCE
                .iter()
                .find(|k| k.section == section && k.key == key)
                .unwrap()
                .default
        };
        let list = |v: Vec<&str>| -> String {
            format!(
                "[{}]",
                v.iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let g = &c.global;
        assert_eq!(
            doc("global", "control-socket"),
            g.control_socket.display().to_string()
        );
        assert_eq!(
            doc("global", "cookie-activation-threshold"),
            g.cookie_activation_threshold.to_string()
        );
        assert_eq!(
            doc("global", "max-half-opened-sa"),
            g.max_half_opened_sa.to_string()
        );
        assert_eq!(
            doc("global", "max-half-opened-sa-per-address"),
            g.max_half_opened_sa_per_address.to_string()
        );
        assert_eq!(
            doc("global", "nat-keepalive-interval"),
            format_duration(g.nat_keepalive_interval)
        );
        assert_eq!(
            doc("global", "fqdn-refresh"),
            format_duration(g.fqdn_refresh)
        );
        let p = &c.ike_crypto_profiles["p1"];
        assert_eq!(
            doc("ike-crypto-profile", "dh-group"),
            list(p.dh_groups.iter().map(|x| x.name()).collect())
        );
        assert_eq!(
            doc("ike-crypto-profile", "authentication"),
            list(p.authentication.iter().map(|x| x.name()).collect())
        );
        assert_eq!(
            doc("ike-crypto-profile", "encryption"),
            list(p.encryption.iter().map(|x| x.name()).collect())
        );
        assert_eq!(
            doc("ike-crypto-profile", "lifetime"),
            format_duration(p.lifetime)
        );
        assert_eq!(
            doc("ike-crypto-profile", "authentication-multiple"),
            p.authentication_multiple.to_string()
        );
        let e = &c.ipsec_crypto_profiles["e1"];
        assert_eq!(doc("ipsec-crypto-profile", "protocol"), e.protocol.name());
        assert!(
            doc("ipsec-crypto-profile", "encryption")
                .starts_with(&list(e.encryption.iter().map(|x| x.name()).collect()))
        );
        assert!(
            doc("ipsec-crypto-profile", "authentication")
                .starts_with(&list(e.authentication.iter().map(|x| x.name()).collect()))
        );
        assert_eq!(
            doc("ipsec-crypto-profile", "dh-group"),
            e.pfs.unwrap().name()
        );
        assert_eq!(
            doc("ipsec-crypto-profile", "lifetime"),
            format_duration(e.lifetime)
        );
        let gw = &c.ike_gateways["gw1"];
        assert_eq!(
            doc("ike-gateway", "address-family"),
            gw.address_family.name()
        );
        let v1 = gw.ikev1.as_ref().unwrap();
        assert_eq!(doc("ike-gateway", "exchange-mode"), v1.exchange_mode.name());
        let dpd = v1.dpd.unwrap();
        assert_eq!(
            doc("ike-gateway.dpd", "interval"),
            format_duration(dpd.interval)
        );
        assert_eq!(doc("ike-gateway.dpd", "retry"), dpd.retry.to_string());
        let v2 = gw.ikev2.unwrap();
        assert_eq!(
            doc("ike-gateway", "liveness-interval"),
            format_duration(v2.liveness_interval)
        );
        assert_eq!(
            doc("ike-gateway", "strict-cookie-validation"),
            v2.strict_cookie_validation.to_string()
        );
        assert_eq!(
            doc("ike-gateway", "nat-traversal"),
            gw.nat_traversal.to_string()
        );
        assert_eq!(
            doc("ike-gateway", "passive-mode"),
            gw.passive_mode.to_string()
        );
        assert_eq!(
            doc("ike-gateway", "fragmentation"),
            gw.fragmentation.to_string()
        );
        assert_eq!(
            doc("ike-gateway", "tcp-encapsulation"),
            format!("\"{}\"", gw.tcp_encapsulation)
        );
        assert_eq!(doc("ike-gateway", "tcp-port"), gw.tcp_port.to_string());
        let ti = &c.tunnel_interfaces["tunnel.1"];
        assert_eq!(doc("tunnel-interface", "mtu"), ti.mtu.to_string());
        assert_eq!(doc("tunnel-interface", "virtual-router"), ti.virtual_router);
        let t = &c.ipsec_tunnels["t1"];
        assert_eq!(
            doc("ipsec-tunnel", "replay-window"),
            t.replay_window.unwrap().to_string()
        );
        let m = &c.monitor_profiles["m1"];
        assert_eq!(
            doc("monitor-profile", "interval"),
            format_duration(m.interval)
        );
        assert_eq!(doc("monitor-profile", "threshold"), m.threshold.to_string());
        assert_eq!(doc("monitor-profile", "action"), m.action.name());
        let r = &c.virtual_routers["default"].static_routes[0];
        assert_eq!(
            doc("virtual-router.static-route", "metric"),
            r.metric.to_string()
        );
        // The defaulted version of a gateway, and the default profile names.
        let l2 = crate::load_str(
            "[ike-gateway.g]\npeer-address = \"192.0.2.2\"\npre-shared-key = \"a long enough key\"\n\
             [tunnel-interface.\"tunnel.1\"]\nzone = \"z\"\n[zone.z]\n\
             [ipsec-tunnel.t]\ntunnel-interface = \"tunnel.1\"\nike-gateway = \"g\"\n",
            "defaults2.toml",
        )
        .unwrap();
        let gw = &l2.config.ike_gateways["g"];
        assert_eq!(doc("ike-gateway", "version"), gw.version.name());
        assert_eq!(doc("ike-gateway", "ike-crypto-profile"), gw.crypto.name);
        let crate::Keying::AutoKey { crypto, .. } = &l2.config.ipsec_tunnels["t"].keying else {
            panic!()
        };
        assert_eq!(doc("ipsec-tunnel", "ipsec-crypto-profile"), crypto.name);
        assert_eq!(doc("ipsec-tunnel", "type"), "auto-key");
    }

    #[test]
    fn docs_configuration_md_is_generated_from_the_table() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let want = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/configuration.md is out of date with crates/config/src/reference.rs; \
             run `UPDATE_DOCS=1 cargo test -p ferrosec-config` and commit the result"
        );
    }

    #[test]
    fn markdown_has_every_key_and_preset() {
        let md = markdown();
        for k in REFERENCE {
            assert!(
                md.contains(&format!("| `{}` |", k.key)),
                "{} missing",
                k.key
            );
        }
        for p in presets::PRESET_NAMES {
            assert!(md.contains(&format!("| {p} |")), "{p} missing");
        }
        assert!(
            md.contains("| default | aes-128-cbc, 3des | sha1 | group2 | 8h |"),
            "{md}"
        );
    }
}
