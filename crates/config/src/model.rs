//! The validated configuration: what the engines and the daemon consume.
//!
//! A [`Config`] only exists if every rule of the loader passed, so its invariants hold:
//!
//! * every name stored in a reference field (`IkeGateway`'s profile, `IpsecTunnel::tunnel_interface`,
//!   `Keying::AutoKey::ike_gateway`, `TunnelInterface::zone`, `TunnelInterface::virtual_router`,
//!   `StaticRoute::interface` when it is a tunnel, rule zones) is a key of the matching map;
//! * crypto profiles are **resolved by value**: an [`IkeGateway`] holds a copy of its
//!   [`IkeCryptoProfile`], an auto-key [`IpsecTunnel`] a copy of its [`IpsecCryptoProfile`], and a
//!   [`TunnelMonitor`] a copy of its [`MonitorProfile`], so an engine needs nothing else. Each
//!   copy keeps the profile's `name`, and the maps list every profile defined in the file plus the
//!   built-in presets that are used;
//! * other objects are referred to **by name** (a tunnel names its gateway and tunnel interface),
//!   with lookups through [`Config::ike_gateway_of`] and friends;
//! * maps are ordered by name (`BTreeMap`), security rules keep file order (first match wins).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::algo::{
    AdditionalKeyExchange, AddressFamily, DhGroup, EspEncryption, ExchangeMode, HashAlgorithm,
    IdType, IkeEncryption, IkeVersion, IpsecAuthentication, IpsecProtocol, MonitorAction,
    RuleAction, TcpEncapsulation,
};
use crate::credentials::Credentials;
use crate::secret::Secret;
use crate::value::{AddressSpec, PortRange, Protocol, Service, Spi};

/// The whole validated gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[global]`: VPN-wide settings (R-CFG-10).
    pub global: Global,
    /// IKE crypto profiles by name: those defined plus the built-in presets in use (R-CFG-1/3).
    pub ike_crypto_profiles: BTreeMap<String, IkeCryptoProfile>,
    /// IPSec crypto profiles by name: those defined plus the built-in presets in use (R-CFG-2/3).
    pub ipsec_crypto_profiles: BTreeMap<String, IpsecCryptoProfile>,
    /// IKE gateways by name (R-CFG-4).
    pub ike_gateways: BTreeMap<String, IkeGateway>,
    /// Tunnel interfaces by name (`tunnel.N`) (R-CFG-5).
    pub tunnel_interfaces: BTreeMap<String, TunnelInterface>,
    /// IPSec tunnels by name (R-CFG-6).
    pub ipsec_tunnels: BTreeMap<String, IpsecTunnel>,
    /// Monitor profiles by name: those defined plus the built-in `default` if used (R-CFG-7).
    pub monitor_profiles: BTreeMap<String, MonitorProfile>,
    /// Virtual routers by name (R-CFG-8); `default` always exists.
    pub virtual_routers: BTreeMap<String, VirtualRouter>,
    /// Zones by name, each with its full membership (R-CFG-9).
    pub zones: BTreeMap<String, Zone>,
    /// Security rules in file order; the first match wins (R-CFG-9).
    pub security_rules: Vec<SecurityRule>,
}

impl Config {
    /// The gateway of an auto-key tunnel.
    pub fn ike_gateway_of(&self, tunnel: &IpsecTunnel) -> Option<&IkeGateway> {
        match &tunnel.keying {
            Keying::AutoKey { ike_gateway, .. } => self.ike_gateways.get(ike_gateway),
            Keying::ManualKey(_) => None,
        }
    }

    /// The tunnel interface of a tunnel.
    pub fn tunnel_interface_of(&self, tunnel: &IpsecTunnel) -> Option<&TunnelInterface> {
        self.tunnel_interfaces.get(&tunnel.tunnel_interface)
    }

    /// The auto-key tunnels that use a gateway, by name.
    pub fn tunnels_of_gateway<'a>(
        &'a self,
        gateway: &'a str,
    ) -> impl Iterator<Item = &'a IpsecTunnel> + 'a {
        self.ipsec_tunnels.values().filter(move |t| {
            matches!(&t.keying, Keying::AutoKey { ike_gateway, .. } if ike_gateway == gateway)
        })
    }

    /// The zone an interface (tunnel or physical) belongs to.
    pub fn zone_of(&self, interface: &str) -> Option<&Zone> {
        self.zones
            .values()
            .find(|z| z.interfaces.iter().any(|i| i == interface))
    }
}

/// `[global]` (R-CFG-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// The daemon's control socket, where the CLI connects.
    pub control_socket: PathBuf,
    /// The system log file (R-OPS-1/3); `None` = log to standard error only.
    pub log_file: Option<PathBuf>,
    /// Half-open IKE SAs above which the responder asks for a cookie; 0 = always (R-V2-5).
    pub cookie_activation_threshold: u32,
    /// Maximum half-open IKE SAs; always above the threshold.
    pub max_half_opened_sa: u32,
    /// Maximum half-open IKE SAs from one address; 0 = no per-address limit.
    pub max_half_opened_sa_per_address: u32,
    /// Interval of NAT-T keepalives (RFC 3948 §2.3).
    pub nat_keepalive_interval: Duration,
    /// How often FQDN peer addresses are resolved again (R-CFG-4); they are also resolved
    /// before each negotiation the gateway starts and after the peer stops answering.
    pub fqdn_refresh: Duration,
    /// Where the Prometheus `/metrics` endpoint listens (R-OPS-5); `None` = off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `ferrosec request vpn export-keys` may write the SAs' keys for Wireshark (R-OPS-5);
    /// off by default.
    pub allow_key_export: bool,
    /// How raw ESP passes the host's kernel (each on by default).
    pub raw_esp: RawEspPaths,
}

/// The ways around the kernel's slower paths that raw ESP takes, over IPv4 and IPv6
/// (`[global]` `esp-packet-ring`, `esp-packet-socket`, `esp-early-drop`); each one off gives
/// that part back to the kernel's IP layer and its netfilter hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEspPaths {
    /// Received through an AF_PACKET ring (before netfilter's hooks).
    pub packet_ring: bool,
    /// Sent through an AF_PACKET socket (past netfilter's OUTPUT and POSTROUTING hooks).
    pub packet_socket: bool,
    /// What the ring has read is dropped at prerouting by an nf_tables table of the daemon's
    /// own; only where the ring reads.
    pub early_drop: bool,
}

impl Default for RawEspPaths {
    fn default() -> Self {
        RawEspPaths {
            packet_ring: true,
            packet_socket: true,
            early_drop: true,
        }
    }
}

/// An IKE crypto profile (R-CFG-1). Lists are in order of preference; the proposals are the
/// combinations of encryption × authentication × dh-group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeCryptoProfile {
    /// The profile's name.
    pub name: String,
    /// Whether this is a built-in preset (R-CFG-3) rather than a profile of the file.
    pub builtin: bool,
    /// Diffie-Hellman groups.
    pub dh_groups: Vec<DhGroup>,
    /// Hashes: integrity and PRF (with AES-GCM only the PRF is used).
    pub authentication: Vec<HashAlgorithm>,
    /// Ciphers.
    pub encryption: Vec<IkeEncryption>,
    /// IKE SA lifetime; rekeyed before it ends.
    pub lifetime: Duration,
    /// IKEv2 re-authentication every `lifetime × authentication_multiple`; 0 = off.
    pub authentication_multiple: u8,
    /// The additional key exchange (RFC 9370 ADDKE1, in IKE_INTERMEDIATE), alternatives in
    /// order of preference; with `none` among them it is optional; empty = none.
    pub additional_key_exchange: Vec<AdditionalKeyExchange>,
}

impl IkeCryptoProfile {
    /// Whether an additional key exchange is offered (some value other than `none`).
    pub fn has_additional_key_exchange(&self) -> bool {
        self.additional_key_exchange
            .iter()
            .any(|k| *k != AdditionalKeyExchange::None)
    }
}

impl IkeCryptoProfile {
    /// The re-authentication interval (R-V2-11), `None` when off.
    pub fn reauthentication_interval(&self) -> Option<Duration> {
        (self.authentication_multiple > 0)
            .then(|| self.lifetime * u32::from(self.authentication_multiple))
    }
}

/// An IPSec crypto profile (R-CFG-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecCryptoProfile {
    /// The profile's name.
    pub name: String,
    /// Whether this is a built-in preset (R-CFG-3).
    pub builtin: bool,
    /// ESP or AH.
    pub protocol: IpsecProtocol,
    /// ESP ciphers in order of preference; empty for AH.
    pub encryption: Vec<EspEncryption>,
    /// Integrity algorithms in order of preference. An AEAD cipher is proposed without integrity
    /// whatever this list holds; a non-AEAD cipher with each non-`none` entry.
    pub authentication: Vec<IpsecAuthentication>,
    /// The PFS group; `None` = `no-pfs`.
    pub pfs: Option<DhGroup>,
    /// SA lifetime.
    pub lifetime: Duration,
    /// SA lifesize in bytes (1 KB = 1024 bytes); `None` = no byte limit.
    pub lifesize: Option<u64>,
    /// Extended sequence numbers (RFC 4304).
    pub esn: Esn,
    /// Additional key exchanges (RFC 9370 ADDKE1) for Child SAs made or rekeyed by
    /// CREATE_CHILD_SA, run in IKE_FOLLOWUP_KE exchanges after the PFS exchange;
    /// alternatives in order of preference, `none` among them makes it optional; empty =
    /// none. The Child SA of IKE_AUTH has no key exchange of its own.
    pub additional_key_exchange: Vec<AdditionalKeyExchange>,
}

impl IpsecCryptoProfile {
    /// Whether an additional key exchange is offered (some value other than `none`).
    pub fn has_additional_key_exchange(&self) -> bool {
        self.additional_key_exchange
            .iter()
            .any(|k| *k != AdditionalKeyExchange::None)
    }
}

/// Extended (64-bit) sequence numbers for ESP and AH (RFC 4304, RFC 7296 §3.3.2 transform
/// type 5): `esn = true | false | "either"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Esn {
    /// Required (`true`): only a proposal with ESN.
    Required,
    /// Off (`false`): 32-bit sequence numbers only.
    Off,
    /// Either (the default): offered with ESN first, then without; as responder, ESN when the
    /// peer offers it, else without.
    #[default]
    Either,
}

impl Esn {
    /// The name the file uses.
    pub fn name(self) -> &'static str {
        match self {
            Esn::Required => "true",
            Esn::Off => "false",
            Esn::Either => "either",
        }
    }
}

/// An IKE gateway (R-CFG-4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeGateway {
    /// The gateway's name.
    pub name: String,
    /// IKE version(s) spoken.
    pub version: IkeVersion,
    /// Address family of the outer addresses.
    pub address_family: AddressFamily,
    /// The outside interface, if named.
    pub interface: Option<String>,
    /// The local address IKE binds to; `None` = any address of the family.
    pub local_address: Option<IpAddr>,
    /// The peer.
    pub peer: PeerAddress,
    /// How both sides authenticate.
    pub authentication: GatewayAuth,
    /// The local identity; `None` = the local IP address. With certificates read from their
    /// files ([`crate::load_file`]) and no `local-id`, it is our certificate's subject DN (type
    /// `dn`, with its DER).
    pub local_id: Option<Identity>,
    /// The expected peer identity; `None` = the peer's IP address, or with certificates the
    /// subject DN of the certificate the peer presents (any peer whose certificate validates).
    pub peer_id: Option<Identity>,
    /// The IKE crypto profile, resolved (its `name` says which).
    pub crypto: IkeCryptoProfile,
    /// IKEv1 settings, present when the version allows IKEv1.
    pub ikev1: Option<Ikev1Settings>,
    /// IKEv2 settings, present when the version allows IKEv2.
    pub ikev2: Option<Ikev2Settings>,
    /// NAT traversal (RFC 3947/3948, RFC 7296 §2.23).
    pub nat_traversal: bool,
    /// Never initiate; only respond.
    pub passive_mode: bool,
    /// IKE fragmentation (RFC 7383 for IKEv2).
    pub fragmentation: bool,
    /// The IKEv2 configuration payload (R-V2-12): ask for an address, or hand them out.
    pub config_payload: Option<ConfigPayload>,
    /// TCP encapsulation (RFC 9329); IKEv2 only, so always `No` on an IKEv1 gateway.
    pub tcp_encapsulation: TcpEncapsulation,
    /// The peer's TCP port for it (and ours, listening).
    pub tcp_port: u16,
}

/// `config-payload` of an IKEv2 gateway (R-V2-12, RFC 7296 §2.19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigPayload {
    /// `request = true`: this side initiates and asks for an address (with DNS servers and
    /// subnets), put on the tunnel interface with the subnets as routes through it.
    Request,
    /// `pool = …`: this side answers and hands out addresses from the pool.
    Serve(AddressPool),
}

/// What a responder hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPool {
    /// At most one prefix per family.
    pub pool: Vec<IpNet>,
    /// Addresses of the pool never handed out: the tunnel interface's own.
    pub reserved: Vec<IpAddr>,
    /// DNS servers.
    pub dns: Vec<IpAddr>,
    /// Protected subnets.
    pub subnets: Vec<IpNet>,
    /// Refuse a peer that sends no configuration payload (FAILED_CP_REQUIRED).
    pub required: bool,
}

impl IkeGateway {
    /// Whether this side may initiate (not passive and the peer address is known).
    pub fn may_initiate(&self) -> bool {
        !self.passive_mode && !matches!(self.peer, PeerAddress::Dynamic)
    }
}

/// The peer of a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddress {
    /// A static address.
    Ip(IpAddr),
    /// A name, re-resolved (in the gateway's address family).
    Fqdn(String),
    /// Any address; this side only responds.
    Dynamic,
}

/// How a gateway authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayAuth {
    /// A pre-shared key (at least 8 characters).
    PreSharedKey(Secret),
    /// Certificates.
    Certificate(CertificateAuth),
}

/// Certificate authentication: the file paths, and what was read from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateAuth {
    /// The local certificate (PEM), optionally followed by its intermediates. Relative to the
    /// configuration file's directory when loaded by [`crate::load_file`] (which makes it
    /// absolute); as written with [`crate::load_str`].
    pub local: PathBuf,
    /// The local private key (PEM).
    pub key: PathBuf,
    /// Trusted CA certificates (PEM), at least one.
    pub ca: Vec<PathBuf>,
    /// IKEv2 hash-and-URL: where the peer fetches our DER certificate.
    pub hash_and_url: Option<String>,
    /// IKEv2 hash-and-URL: fetch the peer's certificate when it sends a hash and URL.
    pub hash_and_url_fetch: bool,
    /// CRL files (PEM or DER), each signed by one of the `ca` certificates; the peer's chain
    /// is checked against them.
    pub crl: Vec<PathBuf>,
    /// Fetch the CRLs named by the peer certificates' distribution points over HTTP.
    pub crl_fetch: bool,
    /// The certificates and key read from the files and checked ([`crate::credentials`]).
    /// Always `Some` from [`crate::load_file`] (a file that cannot be read or checked is an
    /// error of the configuration); `None` from [`crate::load_str`], which reads no files.
    pub credentials: Option<Credentials>,
}

/// An IKE identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its type.
    pub id_type: IdType,
    /// Its value, checked against the type (an address for `ipaddr`, `user@domain` for
    /// `ufqdn` …).
    pub value: String,
    /// For `dn`: the DER encoding of the name (the ID payload's data), when known: for an ID
    /// taken from our certificate, or one written exactly as our certificate's subject reads
    /// ([`crate::credentials::Credentials::subject`]). `None` otherwise.
    pub der: Option<Vec<u8>>,
}

/// IKEv1 settings of a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ikev1Settings {
    /// Phase 1 exchange mode (`auto` initiates main mode).
    pub exchange_mode: ExchangeMode,
    /// Dead peer detection; `None` = off.
    pub dpd: Option<Dpd>,
}

/// IKEv1 dead peer detection (RFC 3706).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    /// Idle time before an R-U-THERE.
    pub interval: Duration,
    /// R-U-THEREs without answer before the peer is declared dead.
    pub retry: u32,
}

/// IKEv2 settings of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ikev2Settings {
    /// Liveness check interval (R-V2-3).
    pub liveness_interval: Duration,
    /// Ask every initiator for a cookie (R-V2-5).
    pub strict_cookie_validation: bool,
}

/// A tunnel interface (R-CFG-5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInterface {
    /// `tunnel.N`.
    pub name: String,
    /// N.
    pub unit: u16,
    /// Its zone (exactly one).
    pub zone: String,
    /// Its virtual router.
    pub virtual_router: String,
    /// Its addresses (at most one IPv4 and one IPv6), possibly none.
    pub addresses: Vec<IpNet>,
    /// MTU of the device.
    pub mtu: u16,
    /// TCP MSS clamping on SYNs through the interface, both ways (R-DP-8).
    pub tcp_mss_clamp: MssClamp,
}

/// `tcp-mss-clamp` of a tunnel interface (R-DP-8): the MSS option of TCP SYNs that cross the
/// tunnel is lowered (never raised) to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MssClamp {
    /// No clamping (the default).
    #[default]
    Off,
    /// The interface's current MTU less the IP and TCP headers (40 for IPv4, 60 for IPv6).
    Auto,
    /// This MSS for IPv4; 20 less for IPv6 (whose header is 20 bytes longer).
    Fixed(u16),
}

/// An IPSec tunnel (R-CFG-6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecTunnel {
    /// The tunnel's name.
    pub name: String,
    /// The tunnel interface it is bound to.
    pub tunnel_interface: String,
    /// Auto key (IKE) or manual key.
    pub keying: Keying,
    /// Proxy IDs as configured (possibly empty: see [`IpsecTunnel::effective_proxy_ids`]).
    pub proxy_ids: Vec<ProxyId>,
    /// The tunnel monitor.
    pub monitor: Option<TunnelMonitor>,
    /// The anti-replay window in packets; `None` = anti-replay off.
    pub replay_window: Option<u32>,
    /// Brought up at start and kept up (`establish = "always"`), or only when traffic needs
    /// it (`"on-demand"`, the default).
    pub always_on: bool,
}

impl IpsecTunnel {
    /// The proxy IDs to negotiate: those configured, or when none are, `0.0.0.0/0` and `::/0`
    /// both ways, any protocol (R-CFG-6).
    pub fn effective_proxy_ids(&self) -> Vec<ProxyId> {
        if !self.proxy_ids.is_empty() {
            return self.proxy_ids.clone();
        }
        ["0.0.0.0/0", "::/0"]
            .iter()
            .map(|p| {
                let net: IpNet = p.parse().unwrap_or_default();
                ProxyId {
                    name: if net.addr().is_ipv4() {
                        "any-v4"
                    } else {
                        "any-v6"
                    }
                    .to_owned(),
                    local: AddressSpec::Prefix(net),
                    remote: AddressSpec::Prefix(net),
                    protocol: Protocol::Any,
                    local_port: PortRange::ANY,
                    remote_port: PortRange::ANY,
                }
            })
            .collect()
    }
}

/// How a tunnel is keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keying {
    /// IKE negotiates the keys.
    AutoKey {
        /// The IKE gateway, a key of [`Config::ike_gateways`].
        ike_gateway: String,
        /// The IPSec crypto profile, resolved.
        crypto: IpsecCryptoProfile,
    },
    /// Static SPIs and keys.
    ManualKey(ManualKey),
}

/// A manual-key SA pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualKey {
    /// SPI of inbound packets.
    pub local_spi: Spi,
    /// SPI of outbound packets.
    pub remote_spi: Spi,
    /// ESP or AH.
    pub protocol: IpsecProtocol,
    /// ESP cipher; `None` for AH.
    pub encryption: Option<EspEncryption>,
    /// Cipher key (with the salt for GCM/CCM); empty for AH and `null`.
    pub encryption_key: Secret,
    /// Integrity algorithm (`none` only with GCM/CCM).
    pub authentication: IpsecAuthentication,
    /// Integrity key; empty with `none`.
    pub authentication_key: Secret,
    /// Our outer address.
    pub local_address: IpAddr,
    /// The peer's outer address.
    pub peer_address: IpAddr,
}

/// A proxy ID: a pair of traffic selectors (R-CFG-6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyId {
    /// Its name, unique in the tunnel.
    pub name: String,
    /// Local addresses.
    pub local: AddressSpec,
    /// Remote addresses.
    pub remote: AddressSpec,
    /// Protocol.
    pub protocol: Protocol,
    /// Local ports (any unless the protocol has ports).
    pub local_port: PortRange,
    /// Remote ports.
    pub remote_port: PortRange,
}

/// A tunnel monitor (R-OPS-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelMonitor {
    /// The address pinged across the tunnel.
    pub destination: IpAddr,
    /// The source of the pings: as configured, or the tunnel interface's address.
    pub source: IpAddr,
    /// The monitor profile, resolved.
    pub profile: MonitorProfile,
}

/// A monitor profile (R-CFG-7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorProfile {
    /// Its name.
    pub name: String,
    /// Whether it is the built-in `default`.
    pub builtin: bool,
    /// Time between pings.
    pub interval: Duration,
    /// Missed pings before the action.
    pub threshold: u32,
    /// What to do.
    pub action: MonitorAction,
}

/// A virtual router (R-CFG-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualRouter {
    /// Its name.
    pub name: String,
    /// Its physical member interfaces (`interfaces`); its tunnel interfaces name it themselves.
    /// Empty for `default`, which holds every interface no other virtual router lists.
    pub interfaces: Vec<String>,
    /// The host routing table that holds its routes: [`MAIN_TABLE`] for `default`, its own
    /// table for every other one (`routing-table`, else one derived from its name).
    pub routing_table: u32,
    /// Its static routes, in file order.
    pub static_routes: Vec<StaticRoute>,
}

/// The host's main routing table (`RT_TABLE_MAIN`), the `default` virtual router's.
pub const MAIN_TABLE: u32 = 254;

/// The routing table of virtual router `name` when its `routing-table` is not set: `default`
/// has the main table, any other one a table from 1000 to 64999 derived from its name (FNV-1a),
/// so that it stays the same across restarts and reloads whatever other routers come and go.
pub fn derived_routing_table(name: &str) -> u32 {
    if name == "default" {
        return MAIN_TABLE;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    1000 + h % 64_000
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    /// Its name, unique in the virtual router.
    pub name: String,
    /// Destination prefix.
    pub destination: IpNet,
    /// Outgoing interface: a tunnel interface of this virtual router or a physical interface.
    pub interface: String,
    /// Next hop; `None` for a tunnel interface (the tunnel is the path).
    pub next_hop: Option<IpAddr>,
    /// Metric; the lowest wins, the next-higher is the fail-over backup.
    pub metric: u32,
}

/// A zone (R-CFG-9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Its name.
    pub name: String,
    /// Every member: those listed in `interfaces` plus tunnel interfaces that name this zone.
    pub interfaces: Vec<String>,
}

/// A set of zones in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneMatch {
    /// `any`.
    Any,
    /// These zones (keys of [`Config::zones`]).
    Zones(Vec<String>),
}

/// A security rule (R-CFG-9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityRule {
    /// Its name, unique.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// A disabled rule is kept but never matches.
    pub disabled: bool,
    /// Source zones.
    pub from: ZoneMatch,
    /// Destination zones.
    pub to: ZoneMatch,
    /// Source addresses (`any` = every address).
    pub source: Vec<AddressSpec>,
    /// Destination addresses.
    pub destination: Vec<AddressSpec>,
    /// Services.
    pub service: Vec<Service>,
    /// Allow or deny.
    pub action: RuleAction,
}
