//! What the IKEv2 engine is configured with: one [`EndpointConfig`] and a [`PeerConfig`] per
//! IKE gateway. `ferrosec-config` builds these from the TOML model.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ferrosec_crypto::Secret;
use ferrosec_wire::ikev2::{DhGroup, EncrId, EsnId, IntegId, PrfId, ProtocolId};

use crate::halfopen::HalfOpenLimits;
use crate::proposal::{Proposal, Transform};
use crate::retransmit::RetransmitPolicy;
use crate::ts::TsPolicy;
use crate::v2::cookie::CookieConfig;

pub use crate::identity::Identity;

/// Endpoint-wide settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Cookie activation, strict mode and the half-open limit (R-CFG-10).
    pub cookies: CookieConfig,
    /// Retransmission of requests.
    pub retransmit: RetransmitPolicy,
    /// How long a responder keeps an IKE SA whose IKE_AUTH never comes (strongSwan: 30 s).
    pub half_open_timeout: Duration,
    /// Per-address limit, key-exchange budget and shorter timeout under a flood.
    pub half_open: HalfOpenLimits,
    /// The most datagrams queued for [`crate::v2::Endpoint::poll_transmit`]; more are dropped.
    pub max_queued_transmits: usize,
    /// The most deleted IKE SAs whose last response is kept for the peer's retransmissions
    /// (tombstones; the oldest goes first when full; 0 keeps none).
    pub max_tombstones: usize,
    /// The largest IP packet an IKE fragment may make over IPv4 (RFC 7383 §2.5.1; IPv6 paths
    /// always use 1280, the IPv6 minimum MTU). strongSwan's default is also 1280.
    pub fragment_size_v4: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            cookies: CookieConfig::default(),
            retransmit: RetransmitPolicy::default(),
            half_open_timeout: Duration::from_secs(30),
            half_open: HalfOpenLimits::default(),
            max_queued_transmits: 4096,
            max_tombstones: 4096,
            fragment_size_v4: 1280,
        }
    }
}

/// Names a peer configuration of an endpoint. The endpoint assigns it when the peer is added
/// (in order by [`crate::v2::Endpoint::new`], then by [`crate::v2::Endpoint::add_peer`]) and
/// never gives it to another peer, so that peers can come and go (a live reload) without the
/// others being renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// Names one policy ([`ChildPolicy`]) of an endpoint, unique among the policies of all its
/// peers. Assigned by the endpoint when the peer is added and never reused (see [`PeerId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub u32);

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy#{}", self.0)
    }
}

/// One IKE gateway (R-CFG-4) with its tunnels' policies.
#[derive(Clone)]
pub struct PeerConfig {
    /// Its name, for events and logs.
    pub name: String,
    /// The peer's address; `None` for a dynamic peer (we only respond).
    pub peer_addr: Option<IpAddr>,
    /// Our identity; `None` = our IP address.
    pub local_id: Option<Identity>,
    /// The identity the peer must present; `None` accepts any.
    pub peer_id: Option<Identity>,
    /// The pre-shared key.
    pub psk: Secret,
    /// IKE SA proposals in order of preference. The KE payload is sent for the first KE
    /// group of the first proposal.
    pub ike_proposals: Vec<Proposal>,
    /// The tunnel policies (proxy IDs), each with its own Child SA proposals and lifetime.
    /// The first Child SA is made for the first one (in IKE_AUTH), the others with
    /// CREATE_CHILD_SA.
    pub policies: Vec<ChildPolicy>,
    /// Liveness check interval (R-V2-3); `None` = off.
    pub liveness: Option<Duration>,
    /// Whether NAT traversal is allowed (switch to port 4500 when a NAT is detected).
    pub nat_traversal: bool,
    /// After the peer is declared dead, start again with IKE_SA_INIT (if we may initiate).
    pub restart_on_dead_peer: bool,
    /// Ask every initiator of this gateway for a cookie (R-CFG-4
    /// `strict-cookie-validation`). The gateway of an IKE_SA_INIT request is known only by
    /// its source address: the gateway whose peer address it is, else the first `dynamic`
    /// one; strictness applies to the requests matched so.
    pub strict_cookies: bool,
    /// IKE fragmentation (RFC 7383): announced in IKE_SA_INIT, used when the peer announces
    /// it too.
    pub fragmentation: bool,
}

impl PeerConfig {
    /// The policy with this ID.
    pub fn policy(&self, id: PolicyId) -> Option<&ChildPolicy> {
        self.policies.iter().find(|p| p.id == id)
    }
}

impl fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConfig")
            .field("name", &self.name)
            .field("peer_addr", &self.peer_addr)
            .field("local_id", &self.local_id)
            .field("peer_id", &self.peer_id)
            .field("psk", &"(secret)")
            .field("ike_proposals", &self.ike_proposals)
            .field("policies", &self.policies)
            .field("liveness", &self.liveness)
            .field("nat_traversal", &self.nat_traversal)
            .finish()
    }
}

/// One tunnel policy: a proxy ID (R-CFG-6) with the Child SA settings of its tunnel's IPSec
/// crypto profile (R-CFG-2).
///
/// Each policy's Child SAs are negotiated with its own proposals and live by its own
/// lifetime, so two tunnels on one gateway never borrow each other's algorithms (as on a
/// firewall, where the IPSec crypto profile belongs to the tunnel, not to the gateway):
///
/// - as initiator, the engine offers `proposals` for this policy's Child SAs, in IKE_AUTH
///   (without KE transforms), in CREATE_CHILD_SA and in their rekeys;
/// - as responder, it first narrows the peer's traffic selectors to a policy and then
///   selects among that policy's `proposals`. When the selectors intersect several
///   policies, the first (in configuration order) whose proposals accept the offer wins;
///   when none accepts, the failure names the policy whose profile refused.
///
/// Byte limits (`lifesize`) belong to the data plane, which rekeys through
/// [`crate::v2::Endpoint::rekey_child_sa`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildPolicy {
    /// Assigned by the endpoint when the peer is added ([`ChildPolicy::id`]).
    pub(crate) id: PolicyId,
    /// The selectors and the policy's name.
    pub ts: TsPolicy,
    /// Child SA (ESP/AH) proposals in order of preference. KE transforms here mean PFS for
    /// CREATE_CHILD_SA; they are left out of IKE_AUTH.
    pub proposals: Vec<Proposal>,
    /// Child SA lifetime (soft: rekey, hard: delete, see [`Lifetimes`]); `None` = no rekey by
    /// time, no expiry.
    pub lifetime: Option<SaLifetime>,
    /// Child SA lifesize in bytes (the data plane enforces it); IKEv1 offers it in quick mode
    /// as a lifetime in kilobytes. `None` = none.
    pub lifesize: Option<u64>,
}

impl ChildPolicy {
    /// A policy with these proposals and no lifetime.
    pub fn new(ts: TsPolicy, proposals: Vec<Proposal>) -> Self {
        ChildPolicy {
            id: PolicyId(0),
            ts,
            proposals,
            lifetime: None,
            lifesize: None,
        }
    }

    /// The same with this Child SA lifetime.
    pub fn with_lifetime(self, lifetime: Option<SaLifetime>) -> Self {
        ChildPolicy { lifetime, ..self }
    }

    /// The same with this lifesize in bytes.
    pub fn with_lifesize(self, lifesize: Option<u64>) -> Self {
        ChildPolicy { lifesize, ..self }
    }

    /// Its ID in the endpoint (meaningful once the peer is added to one).
    pub fn id(&self) -> PolicyId {
        self.id
    }

    /// The proxy ID's name.
    pub fn name(&self) -> &str {
        &self.ts.name
    }
}

/// A common IKE proposal: AES-256-GCM-16, PRF-HMAC-SHA2-256, the given group.
pub fn ike_proposal_gcm(group: DhGroup) -> Proposal {
    Proposal::new(
        ProtocolId::IKE,
        vec![
            Transform::encr(EncrId::AES_GCM_16, Some(256)),
            Transform::prf(PrfId::HMAC_SHA2_256),
            Transform::ke(group),
        ],
    )
}

/// A common IKE proposal: AES-CBC, HMAC-SHA2-256-128, PRF-HMAC-SHA2-256, the given group.
pub fn ike_proposal_cbc(key_bits: u16, group: DhGroup) -> Proposal {
    Proposal::new(
        ProtocolId::IKE,
        vec![
            Transform::encr(EncrId::AES_CBC, Some(key_bits)),
            Transform::integ(IntegId::HMAC_SHA2_256_128),
            Transform::prf(PrfId::HMAC_SHA2_256),
            Transform::ke(group),
        ],
    )
}

/// A common ESP proposal: AES-256-GCM-16, no ESN.
pub fn esp_proposal_gcm() -> Proposal {
    Proposal::new(
        ProtocolId::ESP,
        vec![
            Transform::encr(EncrId::AES_GCM_16, Some(256)),
            Transform::esn(EsnId::NO_ESN),
        ],
    )
}

/// A common ESP proposal: AES-CBC with HMAC-SHA2-256-128, no ESN.
pub fn esp_proposal_cbc(key_bits: u16) -> Proposal {
    Proposal::new(
        ProtocolId::ESP,
        vec![
            Transform::encr(EncrId::AES_CBC, Some(key_bits)),
            Transform::integ(IntegId::HMAC_SHA2_256_128),
            Transform::esn(EsnId::NO_ESN),
        ],
    )
}

/// IKE SA lifetimes of one peer configuration (R-V2-10, R-V2-11), set with
/// [`crate::v2::Endpoint::set_lifetimes`]; the Child SA lifetime is each policy's own
/// ([`ChildPolicy::lifetime`]).
///
/// # When rekeying starts
///
/// As strongSwan does, the rekey (soft) deadline of an SA is drawn when the SA is made:
///
/// ```text
///   soft = created + lifetime − margin − random(0 ..= jitter)
///   hard = created + lifetime
/// ```
///
/// with the random part from the endpoint's injected generator. So each side rekeys a
/// little before its own lifetime ends, the two sides rarely start at the same moment, and
/// when the lifetimes differ by more than `margin + jitter` the side with the shorter one
/// always starts first (the new SA then gets fresh deadlines on both sides). At the hard
/// deadline the SA is deleted. Byte limits belong to the data plane: at its soft byte limit
/// it calls [`crate::v2::Endpoint::rekey_child_sa`], at the hard one
/// [`crate::v2::Endpoint::delete_child_sa`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetimes {
    /// IKE SA lifetime; `None` = no rekey, no expiry.
    pub ike: Option<SaLifetime>,
    /// Re-authenticate (a new IKE SA from scratch, R-V2-11) instead of the `n`-th rekey of
    /// an IKE SA, i.e. after `lifetime × n`; `None` or `Some(0)` = never.
    pub reauth_multiple: Option<u32>,
}

/// One SA lifetime: the hard limit and how early (and how randomly) to rekey before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaLifetime {
    /// The hard limit: the SA is deleted when it is reached.
    pub lifetime: Duration,
    /// Rekey at least this long before the hard limit.
    pub margin: Duration,
    /// Rekey up to this much earlier still, at random.
    pub jitter: Duration,
}

impl SaLifetime {
    /// A lifetime with strongSwan's proportions: margin 10 %, jitter 10 % of the lifetime.
    pub fn new(lifetime: Duration) -> Self {
        SaLifetime {
            lifetime,
            margin: lifetime / 10,
            jitter: lifetime / 10,
        }
    }
}

/// The configuration payload of one peer configuration (RFC 7296 §2.19, §3.15; R-V2-12), set
/// with [`crate::v2::Endpoint::set_config_payload`]. Without one, a CP the peer sends is
/// ignored and none is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigPayload {
    /// Initiator (client): ask for an internal address of each family set here, with DNS
    /// servers and subnets, in IKE_AUTH (CP(CFG_REQUEST)); the answer is in
    /// [`crate::event::IkeSaInfo::config`], and our side of every Child SA is narrowed to the
    /// addresses assigned.
    Request {
        /// Ask for an IPv4 address (INTERNAL_IP4_ADDRESS).
        ipv4: bool,
        /// Ask for an IPv6 address (INTERNAL_IP6_ADDRESS).
        ipv6: bool,
    },
    /// Responder (server): hand out addresses from pools and these attributes.
    Serve(AddressPools),
}

/// What a responder hands out in CP(CFG_REPLY).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressPools {
    /// The IPv4 pool (address, prefix length); the network and broadcast addresses of
    /// prefixes shorter than /31 are never handed out.
    pub ipv4: Option<(std::net::Ipv4Addr, u8)>,
    /// The IPv6 pool (address, prefix length); the prefix's first address (the subnet-router
    /// anycast address) is never handed out.
    pub ipv6: Option<(std::net::Ipv6Addr, u8)>,
    /// Addresses inside the pools never handed out (e.g. the tunnel interface's own).
    pub reserved: Vec<IpAddr>,
    /// DNS servers (INTERNAL_IP4_DNS / INTERNAL_IP6_DNS).
    pub dns: Vec<IpAddr>,
    /// Protected subnets (INTERNAL_IP4_SUBNET / INTERNAL_IP6_SUBNET), as prefixes.
    pub subnets: Vec<(IpAddr, u8)>,
    /// Refuse an initiator that sends no CP(CFG_REQUEST), with FAILED_CP_REQUIRED.
    pub required: bool,
}
