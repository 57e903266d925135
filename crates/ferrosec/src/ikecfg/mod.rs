//! From the validated configuration to the IKEv2 engine's settings.
//!
//! This mapping lives in the binary, not in `ferrosec-config`, because it is the one place that
//! sees both the configuration model and the engine API (and `ferrosec-config` is kept free of
//! engine types so that it can be loaded, checked and documented on its own). It is pure: a
//! [`Config`] in, an [`EngineSetup`] out, with the reasons for every gateway the engine cannot
//! serve, so it is tested here without sockets.
//!
//! | configuration | engine |
//! |---|---|
//! | `ike-gateway` (IKEv2) | one [`PeerConfig`], named after the gateway |
//! | its `ike-crypto-profile` | one IKE proposal per `encryption`, each with every `authentication` as integrity (not with GCM) and as PRF, and every `dh-group` (the first is sent in KE), and `additional-key-exchange` as ADDKE1 (RFC 9370); when that lists `none`, the same proposals without ADDKE follow for responders without RFC 9370 |
//! | `proxy-id`s of every tunnel on the gateway | one [`ChildPolicy`] each, named `tunnel/proxy-id`; no proxy ID = any IPv4 and any IPv6 |
//! | the tunnel's `ipsec-crypto-profile` | that tunnel's policies' Child proposals: one per `encryption`, every `authentication` but `none`, the PFS group as KE (used in CREATE_CHILD_SA only), ESN per `esn` (either: ESN first, then none); and their Child SA `lifetime` |
//! | `liveness-interval`, `nat-traversal`, `pre-shared-key`, `local-id`, `peer-id` | the same fields |
//! | `global.cookie-activation-threshold`, `max-half-opened-sa` | [`CookieConfig`] |
//! | a gateway's `strict-cookie-validation` | [`PeerConfig::strict_cookies`] (that gateway only; matched by source address) |
//! | `global.max-half-opened-sa-per-address` | [`HalfOpenLimits::per_address`] |
//!
//! Each tunnel's Child SAs are negotiated with its own IPSec crypto profile, as on a firewall:
//! two tunnels on one gateway with different profiles each get their own algorithms, PFS
//! group and lifetime (the engine's policies carry them, see [`ChildPolicy`]); the
//! profile's `lifesize` is the data plane's ([`PolicyInfo::lifesize`]).

use std::net::{IpAddr, ToSocketAddrs};

use ferrosec_config::algo::{DhGroup as CfgGroup, IdType as CfgIdType, IpsecProtocol};
use ferrosec_config::value::{AddressSpec, PortRange as CfgPorts};
use ferrosec_config::{
    Config, Credentials, Esn, GatewayAuth, IkeGateway, IpsecCryptoProfile, Keying, PeerAddress,
    ProxyId as CfgProxyId,
};
use ferrosec_crypto::sig::SignatureScheme;
use ferrosec_crypto::{Encryption, Integrity};
use ferrosec_ike::halfopen::HalfOpenLimits;
use ferrosec_ike::proposal::{Proposal, Transform};
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId, TsPolicy};
use ferrosec_ike::v2::cookie::CookieConfig;
use ferrosec_ike::v2::{
    AuthKey, CertAuth, ChildPolicy, EndpointConfig, Identity, PeerConfig, SaLifetime,
};
use ferrosec_wire::ikev2::{DhGroup, EncrId, EsnId, IntegId, PrfId, ProtocolId};

/// Everything the IKE task needs from the configuration.
#[derive(Debug)]
pub(crate) struct EngineSetup {
    /// Endpoint-wide settings.
    pub(crate) endpoint: EndpointConfig,
    /// One per usable gateway, for `Endpoint::new` (which gives them their `PeerId`s).
    pub(crate) peers: Vec<PeerConfig>,
    /// Per usable gateway, as in `peers`: what the daemon needs beside the engine.
    pub(crate) gateways: Vec<GatewayInfo>,
    /// What this build does not serve of the configuration ([`crate::served::unserved`]);
    /// the gateways among them are left out of `peers`.
    pub(crate) unserved: Vec<crate::served::Unserved>,
    /// Gateways left out for other reasons, with the reason in plain words.
    pub(crate) skipped: Vec<(String, String)>,
    /// Gateways whose peer-address FQDN did not resolve (gateway, name): served, waiting for
    /// the name (see [`unresolved_address`]).
    pub(crate) unresolved: Vec<(String, String)>,
}

/// A gateway whose peer-address FQDN has no address tries it again at least this often.
pub(crate) const UNRESOLVED_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// The system log's words for a peer-address FQDN that does not resolve at start or reload.
pub(crate) fn unresolved_words(name: &str, refresh: std::time::Duration) -> String {
    format!(
        "peer-address \"{name}\" does not resolve; the gateway waits for it (answering nobody \
         and starting nothing) and tries it again every {} s at most, and with each attempt",
        refresh.min(UNRESOLVED_RETRY).as_secs()
    )
}

/// What the engine is told a peer's address is while its FQDN does not resolve: the
/// unspecified address of the gateway's family, which no datagram comes from, so the gateway
/// answers nobody and starts nothing until the name resolves (R-CFG-4).
pub(crate) fn unresolved_address(family: ferrosec_config::algo::AddressFamily) -> IpAddr {
    match family {
        ferrosec_config::algo::AddressFamily::Ipv4 => IpAddr::from([0u8; 4]),
        ferrosec_config::algo::AddressFamily::Ipv6 => IpAddr::from([0u8; 16]),
    }
}

/// A gateway as the daemon sees it.
#[derive(Debug, Clone)]
pub(crate) struct GatewayInfo {
    /// The gateway's name.
    pub(crate) name: String,
    /// Configured local address (`None` = any; the route to the peer decides).
    pub(crate) local_address: Option<IpAddr>,
    /// The peer's address (`None` = dynamic, or an FQDN that does not resolve yet).
    pub(crate) peer_address: Option<IpAddr>,
    /// The peer-address when it is an FQDN (resolved again, R-CFG-4), with the gateway's
    /// address family.
    pub(crate) fqdn: Option<(String, ferrosec_config::algo::AddressFamily)>,
    /// Not passive and a known peer: may start negotiations.
    pub(crate) may_initiate: bool,
    /// IKE SA lifetime.
    pub(crate) ike_lifetime: std::time::Duration,
    /// Per policy, in the order of the peer's policies: (tunnel, proxy-id name, Child SA
    /// lifetime …).
    pub(crate) policies: Vec<PolicyInfo>,
    /// IKE SA lifetimes for the engine (rekey before expiry, re-authentication); the Child
    /// SA lifetimes are in each policy of the [`PeerConfig`].
    pub(crate) lifetimes: ferrosec_ike::v2::Lifetimes,
    /// Set for a `version = "ikev1"` gateway: it speaks IKEv1 (RFC 2409) with these settings.
    /// Also set for a `version = "ikev2-preferred"` gateway, with this flag: it initiates
    /// with IKEv2 and falls back to IKEv1 with those settings.
    pub(crate) ikev1: Option<ferrosec_ike::v1::Settings>,
    /// `version = "ikev2-preferred"`.
    pub(crate) ikev2_preferred: bool,
    /// Certificate authentication (the engine's [`ferrosec_ike::v2::Endpoint::set_certificates`]);
    /// `None` = the pre-shared key of the [`PeerConfig`].
    pub(crate) certificates: Option<CertAuth>,
    /// The IKEv2 configuration payload (the engine's
    /// [`ferrosec_ike::v2::Endpoint::set_config_payload`]).
    pub(crate) config_payload: Option<ferrosec_ike::v2::ConfigPayload>,
    /// The tunnel interface of the gateway's tunnels, where a client puts the address its
    /// configuration payload assigned and routes the subnets (one, by the configuration's
    /// rules, when `config_payload` is set).
    pub(crate) tunnel_interface: Option<String>,
    /// The routing table of that tunnel interface's virtual router (the subnets' routes go
    /// there).
    pub(crate) routing_table: u32,
    /// TCP encapsulation (RFC 9329, crate::tcpencap) and the TCP port.
    pub(crate) tcp: (ferrosec_config::algo::TcpEncapsulation, u16),
}

/// The engine's configuration payload of a gateway: a client asks for the families of its
/// tunnels' local selectors.
fn config_payload_of(
    cp: &ferrosec_config::ConfigPayload,
    policies: &[PolicyInfo],
) -> ferrosec_ike::v2::ConfigPayload {
    match cp {
        ferrosec_config::ConfigPayload::Request => {
            let fam = |v6: bool| {
                policies
                    .iter()
                    .flat_map(|p| p.local.iter())
                    .any(|s| s.addrs.is_ipv6() == v6)
            };
            ferrosec_ike::v2::ConfigPayload::Request {
                ipv4: fam(false),
                ipv6: fam(true),
            }
        }
        ferrosec_config::ConfigPayload::Serve(p) => {
            let mut pools = ferrosec_ike::v2::AddressPools {
                reserved: p.reserved.clone(),
                dns: p.dns.clone(),
                subnets: p
                    .subnets
                    .iter()
                    .map(|n| (n.addr(), n.prefix_len()))
                    .collect(),
                required: p.required,
                ..Default::default()
            };
            for n in &p.pool {
                match n {
                    ipnet::IpNet::V4(n) => pools.ipv4 = Some((n.addr(), n.prefix_len())),
                    ipnet::IpNet::V6(n) => pools.ipv6 = Some((n.addr(), n.prefix_len())),
                }
            }
            ferrosec_ike::v2::ConfigPayload::Serve(pools)
        }
    }
}

/// One proxy ID of one tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyInfo {
    /// The IPsec tunnel.
    pub(crate) tunnel: String,
    /// The proxy ID's name.
    pub(crate) proxy_id: String,
    /// The Child SA lifetime of the tunnel's IPSec crypto profile.
    pub(crate) lifetime: std::time::Duration,
    /// The anti-replay window (`None` = off).
    pub(crate) replay_window: Option<u32>,
    /// The Child SA lifesize in bytes of the tunnel's IPSec crypto profile (`None` = none).
    pub(crate) lifesize: Option<u64>,
    /// Our side's selectors as configured.
    pub(crate) local: ferrosec_ike::ts::TsSet,
}

/// The separator in engine policy names (`tunnel/proxy-id`).
pub(crate) const POLICY_SEP: char = '/';

/// Turns an FQDN into an address of the family.
pub(crate) type Resolve<'a> =
    &'a dyn Fn(&str, ferrosec_config::algo::AddressFamily) -> Option<IpAddr>;

/// Builds the engine's settings; `resolve` turns an FQDN peer into an address.
pub(crate) fn engine_setup(config: &Config, resolve: Resolve<'_>) -> EngineSetup {
    let g = &config.global;
    let endpoint = EndpointConfig {
        cookies: CookieConfig {
            activation_threshold: g.cookie_activation_threshold as usize,
            max_half_open: g.max_half_opened_sa as usize,
            ..CookieConfig::default()
        },
        half_open: HalfOpenLimits {
            per_address: g.max_half_opened_sa_per_address as usize,
            ..HalfOpenLimits::default()
        },
        ..EndpointConfig::default()
    };
    let mut setup = EngineSetup {
        endpoint,
        peers: Vec::new(),
        gateways: Vec::new(),
        unserved: crate::served::unserved(config),
        skipped: Vec::new(),
        unresolved: Vec::new(),
    };
    for gw in config.ike_gateways.values() {
        if crate::served::gateway_not_served(gw).is_some() {
            continue;
        }
        match peer_config(config, gw, resolve) {
            Ok((peer, info)) => {
                if let (None, Some((name, _))) = (info.peer_address, &info.fqdn) {
                    setup.unresolved.push((gw.name.clone(), name.clone()));
                }
                setup.peers.push(peer);
                setup.gateways.push(info);
            }
            Err(why) => setup.skipped.push((gw.name.clone(), why)),
        }
    }
    setup
}

/// Resolves a name with the system resolver to its first address of `family` (blocking; at
/// start and reload; the IKE task resolves again without blocking).
pub(crate) fn system_resolve(
    name: &str,
    family: ferrosec_config::algo::AddressFamily,
) -> Option<IpAddr> {
    (name, 500u16)
        .to_socket_addrs()
        .ok()?
        .map(|a| a.ip())
        .find(|a| ferrosec_config::algo::AddressFamily::of(*a) == family)
}

fn peer_config(
    config: &Config,
    gw: &IkeGateway,
    resolve: Resolve<'_>,
) -> Result<(PeerConfig, GatewayInfo), String> {
    // What this build cannot serve at all is said by crate::served, for the daemon and
    // `config check` alike.
    if let Some(u) = crate::served::gateway_not_served(gw) {
        return Err(u.detail());
    }
    let (psk, certificates) = match &gw.authentication {
        GatewayAuth::PreSharedKey(s) => (ferrosec_crypto::Secret::from_slice(s.expose()), None),
        GatewayAuth::Certificate(c) => {
            // Checked by crate::served::gateway_not_served: the files were read.
            let cr = c
                .credentials
                .clone()
                .ok_or("the certificate files were not read")?;
            // The engine signs with the certificate's key and never uses this; random all
            // the same, so that no guessable key is ever configured.
            let mut unused = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut unused);
            (
                ferrosec_crypto::Secret::from_slice(&unused),
                Some(cert_auth(
                    cr,
                    c.hash_and_url.clone(),
                    c.hash_and_url_fetch,
                    c.crl_fetch,
                )),
            )
        }
    };
    let peer_addr = match &gw.peer {
        PeerAddress::Ip(a) => Some(*a),
        PeerAddress::Dynamic => None,
        PeerAddress::Fqdn(name) => resolve(name, gw.address_family),
    };
    let fqdn = match &gw.peer {
        PeerAddress::Fqdn(name) => Some((name.clone(), gw.address_family)),
        _ => None,
    };
    if let Some(id) = &gw.local_id
        && id.id_type == CfgIdType::Dn
        && id.der.is_none()
    {
        return Err(format!(
            "local-id {{ type = \"dn\", value = \"{}\" }} is not our certificate's subject as \
             it reads{}; leave local-id out (it defaults to the subject) or write it exactly so",
            id.value,
            certificates
                .as_ref()
                .and_then(|c: &CertAuth| c.chain.first())
                .map(|c| format!(" (\"{}\")", c.subject()))
                .unwrap_or_default()
        ));
    }
    let local_id = gw.local_id.as_ref().map(identity).transpose()?;
    let peer_id = gw.peer_id.as_ref().map(identity).transpose()?;

    let mut policies = Vec::new();
    let mut infos = Vec::new();
    for tunnel in config.tunnels_of_gateway(&gw.name) {
        let Keying::AutoKey { crypto, .. } = &tunnel.keying else {
            continue;
        };
        // The tunnel's own profile, for each of its proxy IDs.
        let proposals = child_proposals_of(crypto);
        for pid in tunnel.effective_proxy_ids() {
            let name = format!("{}{POLICY_SEP}{}", tunnel.name, pid.name);
            let p = policy(&name, &pid)?;
            infos.push(PolicyInfo {
                tunnel: tunnel.name.clone(),
                proxy_id: pid.name.clone(),
                lifetime: crypto.lifetime,
                replay_window: tunnel.replay_window,
                lifesize: crypto.lifesize,
                local: p.local.clone(),
            });
            policies.push(
                ChildPolicy::new(p, proposals.clone())
                    .with_lifetime(Some(SaLifetime::new(crypto.lifetime)))
                    .with_lifesize(crypto.lifesize),
            );
        }
    }
    if policies.is_empty() {
        return Err("no auto-key ipsec-tunnel uses this gateway; nothing to negotiate".into());
    }
    let liveness = gw
        .ikev2
        .map(|v2| v2.liveness_interval)
        .filter(|d| !d.is_zero());
    let peer = PeerConfig {
        name: gw.name.clone(),
        peer_addr: match (&fqdn, peer_addr) {
            (Some((_, family)), None) => Some(unresolved_address(*family)),
            _ => peer_addr,
        },
        local_id,
        peer_id,
        psk,
        ike_proposals: ike_proposals(gw),
        policies,
        liveness,
        nat_traversal: gw.nat_traversal,
        restart_on_dead_peer: gw.may_initiate(),
        strict_cookies: gw.ikev2.is_some_and(|v2| v2.strict_cookie_validation),
        fragmentation: gw.fragmentation,
    };
    let lifetimes = ferrosec_ike::v2::Lifetimes {
        ike: Some(SaLifetime::new(gw.crypto.lifetime)),
        reauth_multiple: Some(u32::from(gw.crypto.authentication_multiple)),
    };
    // `ikev1` speaks IKEv1; `ikev2-preferred` answers both and falls back to IKEv1 with
    // these settings.
    let ikev2_preferred = gw.version == ferrosec_config::algo::IkeVersion::Ikev2Preferred;
    let ikev1 =
        (gw.version == ferrosec_config::algo::IkeVersion::Ikev1 || ikev2_preferred).then(|| {
            let v1 = gw.ikev1.as_ref();
            ferrosec_ike::v1::Settings {
                mode: match v1.map(|s| s.exchange_mode) {
                    Some(ferrosec_config::algo::ExchangeMode::Aggressive) => {
                        ferrosec_ike::v1::Mode::Aggressive
                    }
                    _ => ferrosec_ike::v1::Mode::Main,
                },
                dpd: v1
                    .and_then(|s| s.dpd)
                    .map(|d| ferrosec_ike::v1::DpdSettings {
                        interval: d.interval,
                        retry: d.retry,
                    }),
                ike_lifetime: Some(SaLifetime::new(gw.crypto.lifetime)),
            }
        });
    let tunnel_interface = config
        .tunnels_of_gateway(&gw.name)
        .map(|t| t.tunnel_interface.clone())
        .next();
    let routing_table = tunnel_interface
        .as_ref()
        .and_then(|t| config.tunnel_interfaces.get(t))
        .and_then(|t| config.virtual_routers.get(&t.virtual_router))
        .map_or(ferrosec_config::MAIN_TABLE, |vr| vr.routing_table);
    let config_payload = gw
        .config_payload
        .as_ref()
        .map(|c| config_payload_of(c, &infos));
    let info = GatewayInfo {
        config_payload,
        tunnel_interface,
        routing_table,
        ikev1,
        ikev2_preferred,
        lifetimes,
        name: gw.name.clone(),
        local_address: gw.local_address,
        peer_address: peer_addr,
        fqdn,
        may_initiate: gw.may_initiate(),
        ike_lifetime: gw.crypto.lifetime,
        policies: infos,
        certificates,
        tcp: (gw.tcp_encapsulation, gw.tcp_port),
    };
    Ok((peer, info))
}

fn identity(id: &ferrosec_config::Identity) -> Result<Identity, String> {
    Ok(match id.id_type {
        CfgIdType::Ipaddr => Identity::addr(
            id.value
                .parse()
                .map_err(|_| format!("ID \"{}\" is not an IP address", id.value))?,
        ),
        CfgIdType::Fqdn => Identity::fqdn(&id.value),
        CfgIdType::Ufqdn => Identity::ufqdn(&id.value),
        CfgIdType::Keyid => Identity::key_id(id.value.as_bytes()),
        // Our certificate's subject (its DER), or a peer's DN as written, compared by name.
        CfgIdType::Dn => match &id.der {
            Some(der) => Identity::der_dn(der),
            None => Identity::dn_text(&id.value),
        },
    })
}

/// The gateway's key, shared with its loaded configuration.
struct CredentialKey(Credentials);

impl AuthKey for CredentialKey {
    fn schemes(&self) -> &[SignatureScheme] {
        self.0.key().schemes()
    }

    fn sign(
        &self,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, ferrosec_crypto::Error> {
        self.0.key().sign(scheme, message)
    }

    fn sign_prehashed(&self, hash: &[u8]) -> Result<Vec<u8>, ferrosec_crypto::Error> {
        self.0.key().sign_prehashed(hash)
    }
}

/// The engine's certificate authentication from a gateway's loaded files.
fn cert_auth(
    cr: Credentials,
    hash_and_url: Option<String>,
    fetch: bool,
    fetch_crls: bool,
) -> CertAuth {
    CertAuth {
        hash_and_url,
        fetch_hash_and_url: fetch,
        chain: cr.chain().to_vec(),
        trust_anchors: cr.trust_anchors().to_vec(),
        crls: cr.crls().cloned().collect(),
        fetch_crls,
        key: std::sync::Arc::new(CredentialKey(cr)),
    }
}

/// The wall-clock time in Unix seconds, for the engine's certificate checks.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn group(g: CfgGroup) -> DhGroup {
    DhGroup(g.iana_id())
}

/// One IKE proposal per encryption algorithm, in the profile's order.
///
/// With an optional additional key exchange (`additional-key-exchange` lists `none`), the
/// proposals with ADDKE come first and the same proposals without it follow: a responder
/// without RFC 9370 (strongSwan 5.9) refuses a proposal with transform types it does not know
/// (RFC 7296 §3.3.6), so it takes one of the latter.
pub(crate) fn ike_proposals(gw: &IkeGateway) -> Vec<Proposal> {
    let ps = ike_proposals_with_addke(gw);
    let optional = gw
        .crypto
        .additional_key_exchange
        .contains(&ferrosec_config::algo::AdditionalKeyExchange::None);
    if !optional || !gw.crypto.has_additional_key_exchange() {
        return ps;
    }
    let legacy: Vec<Proposal> = ps
        .iter()
        .map(|p| Proposal {
            transforms: p
                .transforms
                .iter()
                .filter(|t| ferrosec_ike::proposal::addke_slot(t.ty).is_none())
                .copied()
                .collect(),
            ..p.clone()
        })
        .collect();
    ps.into_iter().chain(legacy).collect()
}

fn ike_proposals_with_addke(gw: &IkeGateway) -> Vec<Proposal> {
    let p = &gw.crypto;
    p.encryption
        .iter()
        .map(|e| {
            let mut t = vec![Transform::encr(EncrId(e.iana_id()), e.key_bits())];
            if !e.is_aead() {
                t.extend(
                    p.authentication
                        .iter()
                        .map(|h| Transform::integ(IntegId(h.iana_id()))),
                );
            }
            t.extend(
                p.authentication
                    .iter()
                    .map(|h| Transform::prf(PrfId(h.prf_id()))),
            );
            t.extend(p.dh_groups.iter().map(|g| Transform::ke(group(*g))));
            // RFC 9370: the alternatives of ADDKE1 (NONE among them makes it optional).
            if p.has_additional_key_exchange() {
                t.extend(
                    p.additional_key_exchange
                        .iter()
                        .map(|k| Transform::addke(1, DhGroup(k.iana_id()))),
                );
            }
            Proposal::new(ProtocolId::IKE, t)
        })
        .collect()
}

/// One ESP (or AH) proposal per encryption algorithm of an IPSec crypto profile.
///
/// With `additional-key-exchange` (RFC 9370, for Child SAs made or rekeyed by
/// CREATE_CHILD_SA, after the PFS exchange) each proposal carries ADDKE1; when `none` is
/// listed too, the same proposals without ADDKE follow, for a peer without RFC 9370
/// (strongSwan 5.9 refuses a proposal with transform types it does not know, RFC 7296
/// §3.3.6). In IKE_AUTH the engine leaves KE and ADDKE out (RFC 7296 §1.2).
pub(crate) fn child_proposals_of(p: &IpsecCryptoProfile) -> Vec<Proposal> {
    let ps = child_proposals_with_addke(p);
    let optional = p
        .additional_key_exchange
        .contains(&ferrosec_config::algo::AdditionalKeyExchange::None);
    if !optional || !p.has_additional_key_exchange() || p.pfs.is_none() {
        return ps;
    }
    let legacy: Vec<Proposal> = ps
        .iter()
        .map(|p| Proposal {
            transforms: p
                .transforms
                .iter()
                .filter(|t| ferrosec_ike::proposal::addke_slot(t.ty).is_none())
                .copied()
                .collect(),
            ..p.clone()
        })
        .collect();
    ps.into_iter().chain(legacy).collect()
}

fn child_proposals_with_addke(p: &IpsecCryptoProfile) -> Vec<Proposal> {
    let integ = || {
        p.authentication
            .iter()
            .filter_map(|a| a.hash())
            .map(|h| Transform::integ(IntegId(h.iana_id())))
    };
    let tail = |t: &mut Vec<Transform>| {
        if let Some(g) = p.pfs {
            t.push(Transform::ke(group(g)));
            // RFC 9370: the alternatives of ADDKE1 (NONE among them makes it optional).
            if p.has_additional_key_exchange() {
                t.extend(
                    p.additional_key_exchange
                        .iter()
                        .map(|k| Transform::addke(1, DhGroup(k.iana_id()))),
                );
            }
        }
        match p.esn {
            Esn::Required => t.push(Transform::esn(EsnId::ESN)),
            Esn::Off => t.push(Transform::esn(EsnId::NO_ESN)),
            Esn::Either => {
                t.push(Transform::esn(EsnId::ESN));
                t.push(Transform::esn(EsnId::NO_ESN));
            }
        }
    };
    match p.protocol {
        IpsecProtocol::Ah => {
            let mut t: Vec<Transform> = integ().collect();
            tail(&mut t);
            vec![Proposal::new(ProtocolId::AH, t)]
        }
        IpsecProtocol::Esp => p
            .encryption
            .iter()
            .map(|e| {
                let mut t = vec![Transform::encr(EncrId(e.iana_id()), e.key_bits())];
                if !e.is_aead() {
                    t.extend(integ());
                }
                tail(&mut t);
                Proposal::new(ProtocolId::ESP, t)
            })
            .collect(),
    }
}

fn addr_spec(a: &AddressSpec) -> Result<AddrSpec, String> {
    Ok(match a {
        AddressSpec::Any => AddrSpec::Any,
        AddressSpec::Prefix(n) => AddrSpec::Range(
            AddrRange::from_prefix(n.addr(), n.prefix_len()).map_err(|e| e.to_string())?,
        ),
        AddressSpec::Range(s, e) => {
            AddrSpec::Range(AddrRange::new(*s, *e).map_err(|e| e.to_string())?)
        }
    })
}

fn ports(p: CfgPorts) -> PortRange {
    PortRange {
        start: p.start,
        end: p.end,
    }
}

/// A proxy ID's traffic selectors (manual-key tunnels use them as the SA's selectors too).
pub(crate) fn proxy_policy(name: &str, p: &CfgProxyId) -> Result<TsPolicy, String> {
    policy(name, p)
}

fn policy(name: &str, p: &CfgProxyId) -> Result<TsPolicy, String> {
    Ok(ProxyId {
        name: name.to_owned(),
        local: addr_spec(&p.local)?,
        remote: addr_spec(&p.remote)?,
        protocol: p.protocol.number(),
        local_ports: ports(p.local_port),
        remote_ports: ports(p.remote_port),
    }
    .to_policy())
}

/// The (tunnel, proxy-id) of an engine policy name.
pub(crate) fn split_policy(name: &str) -> (&str, &str) {
    name.split_once(POLICY_SEP).unwrap_or((name, ""))
}

// ---------------------------------------------------------------------------------------------
// Names of negotiated algorithms, in the configuration's words.

/// `aes-256-gcm`, `aes-128-cbc`, …
pub(crate) fn encr_name(e: Option<(EncrId, Option<u16>)>) -> String {
    let Some((id, bits)) = e else {
        return "none".into();
    };
    let bits = bits.map(|b| b.to_string()).unwrap_or_default();
    match id {
        EncrId::AES_CBC => format!("aes-{bits}-cbc"),
        EncrId::AES_GCM_16 => format!("aes-{bits}-gcm"),
        EncrId::AES_CCM_16 => format!("aes-{bits}-ccm"),
        EncrId::DES => "des".into(),
        EncrId::TRIPLE_DES => "3des".into(),
        EncrId::NULL => "null".into(),
        other => format!("encr-{}", other.0),
    }
}

/// `sha256`, …; `none` with AEAD.
pub(crate) fn integ_name(i: Option<IntegId>) -> String {
    match i {
        None | Some(IntegId::NONE) => "none".into(),
        Some(IntegId::HMAC_MD5_96) => "md5".into(),
        Some(IntegId::HMAC_SHA1_96) => "sha1".into(),
        Some(IntegId::HMAC_SHA2_256_128) => "sha256".into(),
        Some(IntegId::HMAC_SHA2_384_192) => "sha384".into(),
        Some(IntegId::HMAC_SHA2_512_256) => "sha512".into(),
        Some(other) => format!("integ-{}", other.0),
    }
}

/// [`encr_name`] of a Child SA's cipher (the crypto crate's, key length inside): the same
/// words, `show vpn ipsec-sa` and the interop scenarios read them.
pub(crate) fn child_encr_name(e: Option<Encryption>) -> String {
    let Some(e) = e else {
        return "none".into();
    };
    let bits = e.key_len() * 8;
    match e {
        Encryption::AesCbc { .. } => format!("aes-{bits}-cbc"),
        Encryption::AesGcm { icv_len: 16, .. } => format!("aes-{bits}-gcm"),
        Encryption::AesCcm { icv_len: 16, .. } => format!("aes-{bits}-ccm"),
        Encryption::Des => "des".into(),
        Encryption::TripleDes => "3des".into(),
        Encryption::Null => "null".into(),
        other => format!("encr-{}", other.id().0),
    }
}

/// [`integ_name`] of a Child SA's integrity algorithm; `none` with AEAD.
pub(crate) fn child_integ_name(i: Option<Integrity>) -> String {
    match i {
        None => "none".into(),
        Some(Integrity::HmacMd5_96) => "md5".into(),
        Some(Integrity::HmacSha1_96) => "sha1".into(),
        Some(Integrity::HmacSha256_128) => "sha256".into(),
        Some(Integrity::HmacSha384_192) => "sha384".into(),
        Some(Integrity::HmacSha512_256) => "sha512".into(),
        Some(other) => format!("integ-{}", other.id()),
    }
}

/// `sha256`, … for a PRF.
pub(crate) fn prf_name(p: Option<PrfId>) -> String {
    match p {
        None => "none".into(),
        Some(PrfId::HMAC_MD5) => "md5".into(),
        Some(PrfId::HMAC_SHA1) => "sha1".into(),
        Some(PrfId::HMAC_SHA2_256) => "sha256".into(),
        Some(PrfId::HMAC_SHA2_384) => "sha384".into(),
        Some(PrfId::HMAC_SHA2_512) => "sha512".into(),
        Some(other) => format!("prf-{}", other.0),
    }
}

/// The IKE SA's key exchanges: the group, then each RFC 9370 additional key exchange
/// (`group31+ml-kem-768`), as `show vpn ike-sa` and the logs name them.
pub(crate) fn ke_names(g: Option<DhGroup>, addke: &[DhGroup]) -> String {
    let mut s = group_name(g);
    for k in addke.iter().filter(|k| **k != DhGroup::NONE) {
        s.push('+');
        s.push_str(&match *k {
            DhGroup::ML_KEM_512 => "ml-kem-512".to_owned(),
            DhGroup::ML_KEM_768 => "ml-kem-768".to_owned(),
            DhGroup::ML_KEM_1024 => "ml-kem-1024".to_owned(),
            k => format!("ke{}", k.0),
        });
    }
    s
}

/// `psk`, `rsa`, `ecdsa-256`, `digital-signature` …; `-` when not known yet.
pub(crate) fn auth_name(m: Option<ferrosec_wire::ikev2::AuthMethod>) -> String {
    m.map_or("-".into(), ferrosec_ike::v2::AuthInfo::method_name)
}

/// `group19`, …; `no-pfs` when absent.
pub(crate) fn group_name(g: Option<DhGroup>) -> String {
    match g {
        None | Some(DhGroup::NONE) => "no-pfs".into(),
        Some(g) => format!("group{}", g.0),
    }
}

#[cfg(test)]
mod tests;
