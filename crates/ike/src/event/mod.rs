//! What the IKE engines report, the same for both versions: SAs up and down for the data
//! plane, failures in plain words for operators (R-OPS-3), pressure and hints. Child SA
//! algorithms are the crypto crate's ([`Encryption`], [`Integrity`]), not either version's
//! wire transform IDs: each engine looks its negotiated IDs up in the provider.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ferrosec_crypto::x509::{Certificate, fmt_utc};
use ferrosec_crypto::{Encryption, Integrity, Secret};
use ferrosec_wire::ikev2::{AuthMethod, DhGroup, ExchangeType, NotifyType, ProtocolId};
use ferrosec_wire::{IkeSpi, MessageId, Spi, isakmp};

use crate::halfopen::PressureReport;
use crate::identity::Identity;
use crate::proposal::{BadAnswer, NoProposalChosen, OfferRefused, Selected};
use crate::ts::{TsSet, TsUnacceptable};

/// An exchange of either IKE version, for failure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// An IKEv2 exchange (RFC 7296 §1).
    V2(ExchangeType),
    /// An IKEv1 exchange (RFC 2409): main, aggressive, quick mode or informational.
    V1(isakmp::ExchangeType),
}

impl From<ExchangeType> for Exchange {
    fn from(e: ExchangeType) -> Self {
        Exchange::V2(e)
    }
}

impl PartialEq<ExchangeType> for Exchange {
    fn eq(&self, other: &ExchangeType) -> bool {
        *self == Exchange::V2(*other)
    }
}

impl fmt::Display for Exchange {
    /// IKEv2 exchanges by their RFC names (`IKE_AUTH`); IKEv1 ones as firewall logs name
    /// them (`main mode (phase 1)`, `quick mode (phase 2)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exchange::V2(e) => write!(f, "{e}"),
            Exchange::V1(isakmp::ExchangeType::IDENTITY_PROTECTION) => {
                f.write_str("main mode (phase 1)")
            }
            Exchange::V1(isakmp::ExchangeType::AGGRESSIVE) => {
                f.write_str("aggressive mode (phase 1)")
            }
            Exchange::V1(isakmp::ExchangeType::QUICK) => f.write_str("quick mode (phase 2)"),
            Exchange::V1(isakmp::ExchangeType::INFORMATIONAL) => f.write_str("IKEv1 informational"),
            Exchange::V1(e) => write!(f, "IKEv1 {e}"),
        }
    }
}

/// Names one IKE SA of an endpoint: our own SPI for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaHandle(pub IkeSpi);

/// An established IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// The handle.
    pub handle: IkeSaHandle,
    /// The peer configuration's name.
    pub peer: String,
    /// Whether we were the original initiator.
    pub initiator: bool,
    /// SPIi.
    pub spi_i: IkeSpi,
    /// SPIr.
    pub spi_r: IkeSpi,
    /// The negotiated IKE proposal.
    pub proposal: Selected,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The peer's authenticated identity.
    pub peer_id: Identity,
    /// NAT between us: (we are behind one, the peer is behind one).
    pub nat: (bool, bool),
    /// Set when this IKE SA is a re-authentication (RFC 7296 §2.8.3) that we started: the IKE
    /// SA it replaces (deleted once the new Child SAs are up) and why.
    pub reauth: Option<Reauthentication>,
    /// When we re-authenticate it next (R-V2-11), if `authentication-multiple` is set: its
    /// rekey time when that rekey is the re-authentication, else estimated with the rekeys
    /// before it at lifetime − margin (their random jitter may make it earlier).
    pub reauth_at: Option<Instant>,
    /// How each side authenticated, with the certificates (kept across IKE SA rekeys, which
    /// do not authenticate again).
    pub auth: AuthInfo,
    /// What the configuration payload (R-V2-12) carried in IKE_AUTH, if anything.
    pub config: Option<std::sync::Arc<VirtualConfig>>,
}

/// What a Configuration payload exchange (RFC 7296 §2.19, §3.15) settled on an IKE SA: the
/// addresses, DNS servers and subnets the responder handed out in its CFG_REPLY.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VirtualConfig {
    /// Whether we handed them out (responder with a pool: the peer's virtual addresses) or
    /// received them (initiator: ours, to put on the tunnel interface).
    pub assigned_by_us: bool,
    /// The internal addresses, each with its prefix length (32 for IPv4, as §3.15.1
    /// describes INTERNAL_IP4_ADDRESS; IPv6 as sent).
    pub addresses: Vec<(std::net::IpAddr, u8)>,
    /// DNS servers (INTERNAL_IP4_DNS, INTERNAL_IP6_DNS).
    pub dns: Vec<std::net::IpAddr>,
    /// The protected subnets (INTERNAL_IP4_SUBNET, INTERNAL_IP6_SUBNET), as prefixes.
    pub subnets: Vec<(std::net::IpAddr, u8)>,
}

impl VirtualConfig {
    /// The addresses in words: `10.9.0.1, fd09::1/128` (IPv4 without its /32).
    pub fn addresses_text(&self) -> String {
        let v: Vec<String> = self
            .addresses
            .iter()
            .map(|(a, l)| match a {
                std::net::IpAddr::V4(_) if *l == 32 => a.to_string(),
                _ => format!("{a}/{l}"),
            })
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

/// How the two sides of an IKE SA authenticated (`show vpn ike-sa`): the AUTH methods as
/// sent (RFC 7296 §3.8; IKEv1 SAs, pre-shared key only, say shared key) and, with
/// certificates, what an operator reads off them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    /// Our AUTH method.
    pub local: AuthMethod,
    /// The peer's AUTH method.
    pub peer: AuthMethod,
    /// Our certificate, when we signed with one.
    pub local_certificate: Option<Arc<CertificateInfo>>,
    /// The peer's (end-entity) certificate, when it signed with one.
    pub peer_certificate: Option<Arc<CertificateInfo>>,
}

impl AuthInfo {
    /// Both sides with the pre-shared key.
    pub fn psk() -> Self {
        AuthInfo {
            local: AuthMethod::SHARED_KEY_MIC,
            peer: AuthMethod::SHARED_KEY_MIC,
            local_certificate: None,
            peer_certificate: None,
        }
    }

    /// An AUTH method as `show vpn ike-sa` names it: `psk`, `rsa`, `ecdsa-256`, `ecdsa-384`,
    /// `ecdsa-521`, `digital-signature` (RFC 7427), else `method-N`.
    pub fn method_name(m: AuthMethod) -> String {
        match m {
            AuthMethod::SHARED_KEY_MIC => "psk".into(),
            AuthMethod::RSA_SIG => "rsa".into(),
            AuthMethod::ECDSA_SHA256_P256 => "ecdsa-256".into(),
            AuthMethod::ECDSA_SHA384_P384 => "ecdsa-384".into(),
            AuthMethod::ECDSA_SHA512_P521 => "ecdsa-521".into(),
            AuthMethod::DIGITAL_SIGNATURE => "digital-signature".into(),
            AuthMethod(n) => format!("method-{n}"),
        }
    }
}

impl Default for AuthInfo {
    fn default() -> Self {
        Self::psk()
    }
}

/// A certificate as an operator identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject DN (RFC 4514 style).
    pub subject: String,
    /// The issuer DN.
    pub issuer: String,
    /// notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
}

impl CertificateInfo {
    /// What `c` says.
    pub fn of(c: &Certificate) -> Self {
        CertificateInfo {
            subject: c.subject(),
            issuer: c.issuer(),
            not_after: c.validity().1,
        }
    }
}

/// A re-authentication: a new IKE SA from IKE_SA_INIT that replaces an old one (§2.8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reauthentication {
    /// The IKE SA it replaces.
    pub replaces: IkeSaHandle,
    /// Why.
    pub reason: ReauthReason,
}

/// Why we re-authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReauthReason {
    /// The IKE SA's lifetime ran out for the `multiple`-th time since the last
    /// authentication (`authentication-multiple`, R-V2-11).
    AuthenticationMultiple {
        /// The configured multiple.
        multiple: u32,
    },
    /// A command ([`Endpoint::reauthenticate`](crate::v2::Endpoint::reauthenticate)).
    Command,
}

impl fmt::Display for ReauthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReauthReason::AuthenticationMultiple { multiple } => write!(
                f,
                "authentication-multiple {multiple} reached: {multiple} IKE SA lifetime(s) since \
                 the last authentication"
            ),
            ReauthReason::Command => f.write_str("requested"),
        }
    }
}

/// One direction's keys of a Child SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildKeys {
    /// Encryption key (with the salt of AEAD/CTR ciphers).
    pub encr: Secret,
    /// Integrity key (empty with an AEAD cipher).
    pub integ: Secret,
}

/// A Child SA pair for the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaInfo {
    /// The IKE SA it belongs to.
    pub ike_sa: IkeSaHandle,
    /// The policy (proxy ID) name.
    pub policy: String,
    /// ESP or AH.
    pub protocol: ProtocolId,
    /// The SPI the peer puts in packets to us.
    pub inbound_spi: Spi,
    /// The SPI we put in packets to the peer.
    pub outbound_spi: Spi,
    /// Encryption, with its key length (none for AH).
    pub encr: Option<Encryption>,
    /// Integrity (none with an AEAD cipher).
    pub integ: Option<Integrity>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Keys for packets to us.
    pub inbound: ChildKeys,
    /// Keys for packets to the peer.
    pub outbound: ChildKeys,
    /// Our side's selectors.
    pub local_ts: TsSet,
    /// The peer's side's selectors.
    pub remote_ts: TsSet,
    /// Our tunnel endpoint address.
    pub local: SocketAddr,
    /// The peer's tunnel endpoint address.
    pub remote: SocketAddr,
    /// UDP-encapsulate ESP (RFC 3948) and send NAT keepalives: a NAT was detected.
    pub udp_encap: bool,
    /// Install the inbound SA now, the outbound SA only when [`Event::ChildSaOutbound`] (or,
    /// for a rekey, [`Event::ChildSaRekeyed`]) names this pair: an IKEv1 quick-mode
    /// responder accepts ESP on the pair as soon as it sends message 2, but sends on it only
    /// once HASH(3) proved that the initiator installed it.
    pub outbound_deferred: bool,
    /// The lifesize in bytes negotiated with the peer (IKEv1: the shorter of the two sides'
    /// kilobyte lifetimes), if any; the data plane uses the shorter of it and the policy's.
    pub lifesize: Option<u64>,
    /// Whether we started the exchange that made the pair (IKE_AUTH, CREATE_CHILD_SA or
    /// quick mode): for a rekey, which side started it.
    pub initiator: bool,
    /// The key exchanges its keys were derived from: the PFS group, then the RFC 9370
    /// additional key exchanges (IKE_FOLLOWUP_KE) in order; empty when its KEYMAT came from
    /// SK_d and the nonces alone (the Child SA of IKE_AUTH, a rekey without PFS); `None` when
    /// not reported (IKEv1, manual keys).
    pub key_exchanges: Option<Vec<DhGroup>>,
}

/// Why an SA went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We deleted it (command).
    LocalDelete,
    /// The peer deleted it.
    PeerDelete,
    /// The peer did not answer a request after all retransmissions.
    PeerUnreachable,
    /// No authenticated answer after all retransmissions, and the peer answered them with
    /// unprotected INVALID_IKE_SPI: it has most likely lost the IKE SA (a restart).
    PeerLostSa,
    /// Its IKE SA went away.
    IkeSaGone,
    /// The peer started a new IKE SA with INITIAL-CONTACT: it restarted and lost this one.
    PeerInitialContact,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownReason::LocalDelete => "deleted by us",
            DownReason::PeerDelete => "deleted by the peer",
            DownReason::PeerUnreachable => "peer unreachable (no answer to retransmissions)",
            DownReason::PeerLostSa => {
                "peer unreachable (no authenticated answer to retransmissions; it answered \
                 INVALID_IKE_SPI: it has lost the IKE SA, restarted?)"
            }
            DownReason::IkeSaGone => "its IKE SA was deleted",
            DownReason::PeerInitialContact => {
                "the peer sent INITIAL-CONTACT in a new IKE SA (it restarted and lost this one)"
            }
        })
    }
}

/// Why an `ikev2-preferred` negotiation left IKEv2 for IKEv1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackReason {
    /// No answer to IKE_SA_INIT (nor its retransmissions) within this time.
    NoAnswer(std::time::Duration),
    /// IKE_SA_INIT failed: the peer refused it (NO_PROPOSAL_CHOSEN from a peer without an
    /// IKEv2 configuration, INVALID_MAJOR_VERSION …) or its answer was unusable.
    Failed(Failure),
    /// The peer answered IKE_SA_INIT with an IKEv1 (ISAKMP) message.
    Ikev1Answer,
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackReason::NoAnswer(d) => {
                write!(f, "no answer to IKEv2 IKE_SA_INIT within {} s", d.as_secs())
            }
            FallbackReason::Failed(Failure::OfferRefused(_)) => f.write_str(
                "the peer answered IKEv2 IKE_SA_INIT with NO_PROPOSAL_CHOSEN (it has no IKEv2 \
                 configuration for us, or no IKEv2 proposal in common)",
            ),
            FallbackReason::Failed(r) => write!(f, "IKEv2 IKE_SA_INIT failed: {r}"),
            FallbackReason::Ikev1Answer => {
                f.write_str("the peer answered IKEv2 IKE_SA_INIT with an IKEv1 message")
            }
        }
    }
}

/// Why a negotiation failed, in words an operator can act on (R-OPS-3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// We found no acceptable proposal among the peer's.
    #[error("{0}")]
    NoProposalChosen(NoProposalChosen),
    /// The peer's traffic selectors matched a tunnel policy, but none of that policy's own
    /// Child SA proposals (its tunnel's IPSec crypto profile) accepts what the peer offered.
    #[error(
        "the IPSec crypto profile of {policy} refused the Child SA{}: {error}",
        also_refused(.also)
    )]
    ChildNoProposalChosen {
        /// The policy the selectors matched first (for the daemon, `tunnel/proxy-id`).
        policy: String,
        /// Its refusal, with its proposals as "we accept".
        error: NoProposalChosen,
        /// Other policies the selectors matched, whose proposals refused too.
        also: Vec<String>,
    },
    /// The peer chose something we never offered.
    #[error("{0}")]
    BadAnswer(BadAnswer),
    /// The peer's AUTH payload did not verify: most likely the pre-shared keys differ.
    #[error(
        "authentication failed: the peer's AUTH does not verify with our pre-shared key (pre-shared key mismatch?)"
    )]
    AuthFailed,
    /// The peer's identity is not the configured one.
    #[error("peer ID mismatch: peer presented {presented}, we expect {expected}")]
    IdMismatch {
        /// What the peer sent.
        presented: Identity,
        /// What we are configured with.
        expected: Identity,
    },
    /// The peer's certificate chain leads to no trust anchor of ours: the last certificate
    /// that could be placed and the issuer that is neither a trusted CA nor a sent
    /// intermediate.
    #[error(
        "the peer's certificate is not trusted: \"{subject}\" was issued by \"{issuer}\", \
         which is not one of our CA certificates (ca), and the peer sent no intermediate for it"
    )]
    UntrustedIssuer {
        /// The subject of the certificate whose issuer is missing.
        subject: String,
        /// The issuer that was not found.
        issuer: String,
    },
    /// A certificate of the peer's chain has expired.
    #[error(
        "the peer's certificate \"{subject}\" expired on {} (our clock says {})",
        fmt_utc(*.not_after),
        fmt_utc(*.now)
    )]
    CertificateExpired {
        /// Its subject.
        subject: String,
        /// Its notAfter (Unix seconds).
        not_after: i64,
        /// Our time (Unix seconds).
        now: i64,
    },
    /// A certificate of the peer's chain is not valid yet.
    #[error(
        "the peer's certificate \"{subject}\" is not valid before {} (our clock says {})",
        fmt_utc(*.not_before),
        fmt_utc(*.now)
    )]
    CertificateNotYetValid {
        /// Its subject.
        subject: String,
        /// Its notBefore (Unix seconds).
        not_before: i64,
        /// Our time (Unix seconds).
        now: i64,
    },
    /// The peer sent more certificates than a chain may have
    /// ([`MAX_CHAIN_LEN`](ferrosec_crypto::x509::MAX_CHAIN_LEN), R-V2-9).
    #[error(
        "the peer's certificate \"{subject}\" came with a chain of {len} certificates (its own \
         and {} intermediates); at most {} are accepted: the peer must send fewer \
         intermediates (never the root CA)",
        .len - 1,
        ferrosec_crypto::x509::MAX_CHAIN_LEN
    )]
    ChainTooLong {
        /// The end entity's subject.
        subject: String,
        /// How many certificates it sent (its own and the intermediates).
        len: usize,
    },
    /// The peer's chain does not validate for another reason (a bad signature in it, key
    /// usage, a SHA-1 signature …).
    #[error("the peer's certificate \"{subject}\" does not validate: {reason}")]
    CertificateInvalid {
        /// The end entity's subject (or what was sent, when it does not parse).
        subject: String,
        /// Why.
        reason: String,
    },
    /// A certificate of the peer's chain is on a CRL of its issuer: which, its serial, the
    /// CRL's issuer, the date and the reason, in words (`peer certificate "CN=…" serial …
    /// revoked by "CN=…" on … (reason keyCompromise)`).
    #[error("{0}")]
    CertificateRevoked(String),
    /// The peer's ID is not one its certificate vouches for (subject DN or subjectAltName).
    #[error(
        "peer ID {id} does not match its certificate (subject \"{subject}\", SAN {})",
        if .sans.is_empty() { "none".to_owned() } else { .sans.join(", ") }
    )]
    CertificateIdMismatch {
        /// The ID the peer sent.
        id: Identity,
        /// The certificate's subject DN.
        subject: String,
        /// Its subjectAltNames usable as IDs.
        sans: Vec<String>,
    },
    /// The peer's AUTH signature does not verify with its certificate's public key.
    #[error(
        "bad signature: the peer's AUTH ({scheme}) does not verify with the public key of its \
         certificate \"{subject}\" (it does not hold that certificate's private key)"
    )]
    BadSignature {
        /// The certificate's subject.
        subject: String,
        /// The signature algorithm, in words.
        scheme: String,
    },
    /// The peer's certificate, sent as a hash and URL, could not be had.
    #[error("the peer's certificate could not be fetched from {url}: {why}")]
    CertificateFetch {
        /// The peer's URL.
        url: String,
        /// Why, in words.
        why: String,
    },
    /// The peer's AUTH payload cannot be checked: an unknown method or signature algorithm.
    #[error("the peer's AUTH cannot be checked: {0}")]
    UnsupportedSignature(String),
    /// We authenticate with certificates, the peer sent none.
    #[error(
        "the peer sent no certificate (CERT payload) with its AUTH: it must send its \
         certificate (strongSwan: send_cert = always, or make it trust one of our CAs)"
    )]
    NoPeerCertificate,
    /// The peer authenticated with another method than this gateway's.
    #[error("the peer authenticated with {got}, but this gateway uses {expected}")]
    AuthMethodMismatch {
        /// The peer's AUTH method.
        got: ferrosec_wire::ikev2::AuthMethod,
        /// Ours, in words.
        expected: &'static str,
    },
    /// IKEv1: the peer offered no phase-1 transform with our authentication method (both
    /// sides of IKEv1 use the one negotiated method: a pre-shared key, or signatures of the
    /// kind our certificate's key makes).
    #[error(
        "the peer offers IKEv1 authentication by {offered} only, but this gateway \
         authenticates with {ours}: configure both sides alike (strongSwan: auth = psk or \
         pubkey, with a certificate of the same key type)"
    )]
    Ikev1AuthMethod {
        /// The peer's methods, in words.
        offered: String,
        /// Ours, in words.
        ours: String,
    },
    /// No traffic selectors in common.
    #[error("{0}")]
    TsUnacceptable(TsUnacceptable),
    /// IKEv1 quick mode: the peer's proxy IDs (IDci/IDcr) match none of ours.
    #[error(
        "IKE phase-2 negotiation failed when processing Proxy ID: peer proposed local {peer_local} remote {peer_remote}; {}",
        ours_proxy_ids(.ours)
    )]
    ProxyIdMismatch {
        /// The peer's side (its IDci).
        peer_local: crate::ts::TrafficSelector,
        /// Our side as the peer proposed it (its IDcr).
        peer_remote: crate::ts::TrafficSelector,
        /// Our policies, as (name, local, remote).
        ours: Vec<(String, TsSet, TsSet)>,
    },
    /// The peer narrowed the selectors to something we did not offer.
    #[error(
        "peer answered TSi [{tsi}] TSr [{tsr}], outside what we offered (TSi [{offered_tsi}] TSr [{offered_tsr}])"
    )]
    BadTsAnswer {
        /// Answered TSi.
        tsi: TsSet,
        /// Answered TSr.
        tsr: TsSet,
        /// Offered TSi.
        offered_tsi: TsSet,
        /// Offered TSr.
        offered_tsr: TsSet,
    },
    /// The peer answered NO_PROPOSAL_CHOSEN to our IKE proposals.
    #[error("{0}")]
    OfferRefused(OfferRefused),
    /// The peer refused a Child SA we asked for with an error notify (NO_PROPOSAL_CHOSEN,
    /// TS_UNACCEPTABLE …): what we offered, since the peer does not say what it wants.
    #[error(
        "peer refused the Child SA of {policy}: {notify}{}; we offered {offered} for TSi [{tsi}] TSr [{tsr}]",
        peer_refusal_hint(*.notify)
    )]
    ChildRefused {
        /// The policy (proxy ID) name.
        policy: String,
        /// The notify the peer sent.
        notify: NotifyType,
        /// Our proposals, in words.
        offered: String,
        /// The selectors we offered for our side.
        tsi: TsSet,
        /// The selectors we offered for the peer's side.
        tsr: TsSet,
    },
    /// The peer refused with an error notify.
    #[error("peer refused: {notify}{}", peer_refusal_hint(*.notify))]
    PeerRefused {
        /// The notify the peer sent.
        notify: NotifyType,
    },
    /// Configuration payload (R-V2-12), as responder: no address could be assigned to the
    /// peer that asked for one; answered INTERNAL_ADDRESS_FAILURE (§3.10.1), no Child SA.
    #[error(
        "no address for the peer {peer_id}: {why}; answered INTERNAL_ADDRESS_FAILURE, so its IKE SA has no IPsec SA"
    )]
    AddressFailure {
        /// The peer's identity.
        peer_id: Identity,
        /// Why, in words (pool exhausted with its size, no pool of the family asked for).
        why: String,
    },
    /// Configuration payload (R-V2-12), as responder: `config-payload.required` is set and
    /// the peer sent no CP(CFG_REQUEST); answered FAILED_CP_REQUIRED (§3.10.1), no Child SA.
    #[error(
        "the peer {peer_id} sent no configuration payload (CFG_REQUEST), which config-payload.required demands; answered FAILED_CP_REQUIRED, so its IKE SA has no IPsec SA (the peer must ask for an address: strongSwan vips = 0.0.0.0, ferrosec config-payload = {{ request = true }})"
    )]
    CpRequired {
        /// The peer's identity.
        peer_id: Identity,
    },
    /// Configuration payload (R-V2-12), as initiator: a policy's own side, narrowed to the
    /// addresses the peer assigned us, is empty (it asks for a family the peer gave us no
    /// address of), so its Child SA is not asked for.
    #[error(
        "proxy-id {policy} cannot be negotiated: its local side [{local}] holds none of the addresses the peer assigned us ({assigned})"
    )]
    NoVirtualAddress {
        /// The policy (proxy ID) name.
        policy: String,
        /// Its local selectors as configured.
        local: TsSet,
        /// The addresses the peer assigned us, in words.
        assigned: String,
    },
    /// The peer did not answer.
    #[error("peer unreachable: no answer after {retransmissions} retransmissions")]
    PeerUnreachable {
        /// How many retransmissions were sent.
        retransmissions: u32,
    },
    /// No configuration for the peer that sent a request.
    #[error("no IKE gateway configured for peer {0}")]
    NoPeerConfig(SocketAddr),
    /// The peer started IKEv2, but its gateway speaks IKEv1 only (`version = "ikev1"`).
    #[error(
        "peer {0} started IKEv2, but the gateway speaks IKEv1 only (version = \"ikev1\"); refused with NO_PROPOSAL_CHOSEN: set version = \"ikev2\" or \"ikev2-preferred\" on one side, or \"ikev1\" on both"
    )]
    Ikev2NotServed(SocketAddr),
    /// IKEv1 responder: the peer stopped half-way through phase 1 and the half-open SA timed
    /// out.
    #[error(
        "the peer {from} stopped half-way: we answered and waited 30 s for its {waiting_for} \
         in vain (is UDP 4500 blocked after the switch to NAT-T, or did the peer give up? see \
         its log)"
    )]
    Stalled {
        /// What we were waiting for.
        waiting_for: &'static str,
        /// The peer's address.
        from: SocketAddr,
    },
    /// IKEv1: the quick-mode responder set the commit bit (RFC 2408 §3.1) but its CONNECTED
    /// notify never came; the pair was deleted.
    #[error(
        "the peer set the commit bit in quick mode for {policy} but sent no CONNECTED notify \
         within {} s; the IPsec SA was deleted (turn the commit bit off on the peer)",
        .waited.as_secs()
    )]
    NotConnected {
        /// The policy (proxy ID) name.
        policy: String,
        /// How long we waited.
        waited: std::time::Duration,
    },
    /// An AH Child SA was negotiated or configured while a NAT is between the peers.
    #[error(
        "AH cannot cross the NAT detected between the peers (AH authenticates the IP addresses \
         the NAT rewrites): use an ESP profile for this tunnel"
    )]
    AhWithNat,
    /// The peer sent a message the protocol does not allow, and the negotiation ended.
    #[error("the peer sent a malformed {exchange} {}: {what}", if *.response { "response" } else { "request" })]
    PeerMisbehaved {
        /// The exchange.
        exchange: Exchange,
        /// Whether the message was a response (else a request).
        response: bool,
        /// What was wrong with it.
        what: Malformed,
    },
    /// Something on our side cannot go on (a state the engine should never reach).
    #[error("internal error: {0}")]
    Local(LocalError),
    /// A cryptographic step of the negotiation failed.
    #[error("{0}")]
    Crypto(CryptoFailure),
    /// An RFC 9370 additional key exchange of a CREATE_CHILD_SA (IKE_FOLLOWUP_KE, §2.2.4)
    /// went wrong; the new SA was not made, the IKE SA and its current Child SAs live on.
    #[error("{0}")]
    Followup(FollowupFailure),
    /// IKEv1: the tunnel's IPSec crypto profile has nothing quick mode can offer.
    #[error(
        "the IPSec crypto profile of {policy} has no ESP or AH proposal IKEv1 can carry: add \
         one with algorithms IKEv1 knows (e.g. AES-CBC with SHA-256, or AES-GCM)"
    )]
    NoIkev1Proposal {
        /// The policy (proxy ID) name.
        policy: String,
    },
}

/// What went wrong in the IKE_FOLLOWUP_KE exchanges of RFC 9370 §2.2.4, with both sides'
/// values (link data in hex, key exchange methods by name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowupFailure {
    /// Responder: an IKE_FOLLOWUP_KE request whose ADDITIONAL_KEY_EXCHANGE link is not the
    /// one we gave (or is missing); answered STATE_NOT_FOUND.
    #[error(
        "the peer's IKE_FOLLOWUP_KE request carries link data {got}, but we gave {expected} for its CREATE_CHILD_SA (message ID {made_in}); answered STATE_NOT_FOUND and dropped that additional key exchange"
    )]
    WrongLink {
        /// The link we gave, in hex.
        expected: String,
        /// What the peer sent, in hex, or "none".
        got: String,
        /// The Message ID of the CREATE_CHILD_SA exchange the link belongs to.
        made_in: u32,
    },
    /// Responder: an IKE_FOLLOWUP_KE request while no additional key exchange is pending
    /// (never started, timed out, or dropped); answered STATE_NOT_FOUND.
    #[error(
        "the peer sent an IKE_FOLLOWUP_KE request with link data {got}, but no additional key exchange is pending here (none was negotiated, or it timed out); answered STATE_NOT_FOUND"
    )]
    NoState {
        /// What the peer sent, in hex, or "none".
        got: String,
    },
    /// Either side: the KE payload is of another method than the negotiated additional key
    /// exchange (the responder answers INVALID_SYNTAX).
    #[error(
        "the peer's IKE_FOLLOWUP_KE {} carries a KE payload of {}, but additional key exchange {index} was negotiated as {}{}",
        if *.response { "response" } else { "request" },
        kem_name(*.got), kem_name(*.expected),
        if *.response { "" } else { "; answered INVALID_SYNTAX" }
    )]
    WrongMethod {
        /// Which additional key exchange (1-based).
        index: usize,
        /// The negotiated method.
        expected: DhGroup,
        /// The method of the peer's KE payload.
        got: DhGroup,
        /// Whether the message was a response.
        response: bool,
    },
    /// Either side: the message has no KE payload (the responder answers INVALID_SYNTAX).
    #[error(
        "the peer's IKE_FOLLOWUP_KE {} has no KE payload for additional key exchange {index} ({}){}",
        if *.response { "response" } else { "request" },
        kem_name(*.expected),
        if *.response { "" } else { "; answered INVALID_SYNTAX" }
    )]
    MissingKe {
        /// Which additional key exchange (1-based).
        index: usize,
        /// The negotiated method.
        expected: DhGroup,
        /// Whether the message was a response.
        response: bool,
    },
    /// Initiator: the responder chose additional key exchanges but its answer gave no link
    /// to continue with.
    #[error(
        "the peer chose {} additional key exchange(s) ({}) but its {after} response has no ADDITIONAL_KEY_EXCHANGE notify to continue with",
        .methods.len(), .methods.iter().map(|m| kem_name(*m)).collect::<Vec<_>>().join(", ")
    )]
    NoLink {
        /// The exchange whose response lacked the link.
        after: &'static str,
        /// The additional key exchanges still to run.
        methods: Vec<DhGroup>,
    },
    /// Responder: the initiator did not send the next IKE_FOLLOWUP_KE request in time; the
    /// pending state was dropped (a later request gets STATE_NOT_FOUND).
    #[error(
        "the peer did not send IKE_FOLLOWUP_KE for additional key exchange {index} ({}) within {} s of our answer; the pending {what} was dropped",
        kem_name(*.expected), .waited.as_secs()
    )]
    TimedOut {
        /// Which additional key exchange (1-based).
        index: usize,
        /// The method we waited for.
        expected: DhGroup,
        /// How long we waited.
        waited: std::time::Duration,
        /// "IKE SA rekey" or "Child SA".
        what: &'static str,
    },
}

/// An additional key exchange method by name (`ml-kem-768`), as the configuration spells it.
pub fn kem_name(g: DhGroup) -> String {
    match g {
        DhGroup::ML_KEM_512 => "ml-kem-512".into(),
        DhGroup::ML_KEM_768 => "ml-kem-768".into(),
        DhGroup::ML_KEM_1024 => "ml-kem-1024".into(),
        DhGroup::NONE => "none".into(),
        g => format!("key exchange method {}", g.0),
    }
}

/// Which cryptographic step failed, with the crypto provider's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoFailure {
    /// The peer's key-exchange value does not give a shared secret (RFC 6989 checks, a
    /// wrong length, a point not on the curve).
    #[error("the peer's key exchange value for group {group} was rejected: {why}")]
    PeerKeyExchange {
        /// The IANA group number.
        group: u16,
        /// The provider's reason.
        why: ferrosec_crypto::Error,
    },
    /// Our own key exchange could not start.
    #[error("our key exchange for group {group} could not start: {why}")]
    KeyExchange {
        /// The IANA group number.
        group: u16,
        /// The provider's reason.
        why: ferrosec_crypto::Error,
    },
    /// Deriving the keys of the new SA failed.
    #[error("deriving the {sa} keys failed: {why}")]
    KeyDerivation {
        /// Which SA: "IKE SA", "Child SA", "ISAKMP SA", "IPsec SA".
        sa: &'static str,
        /// The provider's reason.
        why: ferrosec_crypto::Error,
    },
    /// The agreed algorithms are not ones this build can run.
    #[error("this build cannot run the agreed {what}: {why}")]
    Unsupported {
        /// What was agreed ("Child SA algorithms", "IKEv1 transform …").
        what: String,
        /// The provider's reason.
        why: ferrosec_crypto::Error,
    },
}

fn ours_proxy_ids(ours: &[(String, TsSet, TsSet)]) -> String {
    if ours.is_empty() {
        return "we have no proxy ID for this peer".into();
    }
    ours.iter()
        .map(|(n, l, r)| format!("ours ({n}) local {l} remote {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn also_refused(also: &[String]) -> String {
    if also.is_empty() {
        String::new()
    } else {
        format!(" (and so did that of {})", also.join(", "))
    }
}

fn peer_refusal_hint(n: NotifyType) -> &'static str {
    match n {
        NotifyType::AUTHENTICATION_FAILED => {
            " (the peer could not verify our AUTH: pre-shared key or ID mismatch, or it does \
             not trust our certificate; the peer's log says which)"
        }
        NotifyType::NO_PROPOSAL_CHOSEN => " (none of our proposals is acceptable to the peer)",
        NotifyType::TS_UNACCEPTABLE => " (the peer has no proxy ID matching ours)",
        NotifyType::INVALID_KE_PAYLOAD => " (the peer wants another DH group)",
        NotifyType::INTERNAL_ADDRESS_FAILURE => {
            " (the peer could not assign us an address: its pool is exhausted or has none of \
             the family we asked for; its log says which)"
        }
        NotifyType::FAILED_CP_REQUIRED => {
            " (the peer requires a configuration payload: set config-payload = { request = \
             true } on this gateway)"
        }
        // The rest of RFC 7296 §3.10.1, in words.
        NotifyType::SINGLE_PAIR_REQUIRED => {
            " (the peer accepts only traffic selectors of a single pair of addresses: make the \
             proxy ID host-to-host, /32 or /128 on both sides)"
        }
        NotifyType::NO_ADDITIONAL_SAS => " (the peer accepts no more Child SAs on this IKE SA)",
        NotifyType::INVALID_SELECTORS => {
            " (the peer received packets on a Child SA that its selectors do not allow)"
        }
        NotifyType::TEMPORARY_FAILURE => {
            " (the peer is busy with another exchange on this SA, such as a rekey; the request \
             is tried again later)"
        }
        NotifyType::CHILD_SA_NOT_FOUND => " (the peer has no Child SA with that SPI)",
        NotifyType::INVALID_SYNTAX => {
            " (the peer could not parse our message or found a value out of range; its log \
             says which)"
        }
        NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD => {
            " (the peer does not support a payload we marked critical)"
        }
        NotifyType::INVALID_MAJOR_VERSION => " (the peer does not speak this IKE version)",
        NotifyType::INVALID_MESSAGE_ID => {
            " (the peer says one of our Message IDs was outside its window)"
        }
        NotifyType::STATE_NOT_FOUND => {
            " (RFC 9370: the peer holds no pending additional key exchange for our \
             IKE_FOLLOWUP_KE: it timed out there, or the link data did not match; the rekey is \
             tried again)"
        }
        _ => "",
    }
}

/// A sign from the peer that an SA may be gone there, and what the engine does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// An unprotected INVALID_IKE_SPI answered our request `message_id` (§2.21.4): the
    /// request is retransmitted on a short schedule; no authenticated answer in time, and the
    /// IKE SA goes with [`DownReason::PeerLostSa`].
    InvalidIkeSpi {
        /// The request it answered.
        message_id: MessageId,
    },
    /// An unprotected INVALID_SPI or INVALID_IKE_SPI notify arrived in a request with our IKE
    /// SPIs: a liveness check starts now (when none is in flight).
    Unprotected {
        /// The notify.
        notify: NotifyType,
    },
    /// The peer said, protected, that it has no SA for our outbound SPI `spi` (INVALID_SPI,
    /// §3.10.1): the pair is deleted, and traffic or policy brings up a new one.
    InvalidSpi {
        /// Our outbound SPI.
        spi: Spi,
    },
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hint::InvalidIkeSpi { message_id } => write!(
                f,
                "the peer answered our request {} with an unprotected INVALID_IKE_SPI: it may \
                 have lost the IKE SA (restarted?); retransmitting on a short schedule to check",
                message_id.0
            ),
            Hint::Unprotected { notify } => write!(
                f,
                "an unprotected {notify} arrived for this IKE SA: checking that the peer still \
                 has it"
            ),
            Hint::InvalidSpi { spi } => write!(
                f,
                "the peer has no IPsec SA for our outbound SPI 0x{:08x} (INVALID_SPI); deleting \
                 the pair",
                spi.0
            ),
        }
    }
}

/// What was wrong with a message from the peer ([`Failure::PeerMisbehaved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Payloads it must carry are missing.
    #[error("it lacks {0}")]
    Missing(&'static str),
    /// A nonce outside 16–256 bytes (RFC 7296 §3.9).
    #[error("its nonce is not 16 to 256 bytes long")]
    NonceLength,
    /// An answer with other than one proposal (§3.3).
    #[error("its SA payload has other than one proposal")]
    ProposalCount,
    /// A proposal whose SPI has the wrong size for its protocol.
    #[error("its proposal's SPI is not {0} bytes long")]
    SpiSize(u8),
    /// A KE payload of another group than the one negotiated.
    #[error("its KE payload is of another group than the negotiated one")]
    KeGroup,
}

/// A state the engine should never reach ([`Failure::Local`]), named so that a report of
/// one can be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// An established IKE SA without keys.
    #[error("the IKE SA has no keys")]
    NoKeys,
    /// An AH proposal was selected without an integrity algorithm.
    #[error("an AH proposal was selected without integrity")]
    AhWithoutIntegrity,
    /// Traffic selectors matched no policy after narrowing succeeded.
    #[error("the selectors matched no policy")]
    NoPolicy,
    /// `ikev2-preferred`: IKEv1 could not be started after IKEv2 gave way.
    #[error("IKEv1 could not start in place of IKEv2: {0}")]
    FallbackStart(String),
    /// Certificates are configured but the engine was given no wall-clock time to check
    /// their validity against ([`crate::v2::Endpoint::set_wall_clock`]).
    #[error("no wall-clock time was given to check certificate dates against")]
    NoWallClock,
    /// We could not sign our AUTH payload.
    #[error("our AUTH could not be signed: {0}")]
    Sign(String),
}

/// What the engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An IKE SA is authenticated and usable.
    IkeSaUp(IkeSaInfo),
    /// A Child SA pair is ready: install it in the data plane.
    ///
    /// The inbound SA is to be installed at once. If the pair replaces another one of the
    /// same policy (a rekey), outbound traffic stays on the old pair until
    /// [`Event::ChildSaRekeyed`] names this one: the peer may not have installed it yet.
    ChildSaUp(ChildSaInfo),
    /// A Child SA pair is gone: remove it.
    ChildSaDown {
        /// The IKE SA.
        ike_sa: IkeSaHandle,
        /// Inbound SPI.
        inbound_spi: Spi,
        /// Outbound SPI.
        outbound_spi: Spi,
        /// Why.
        reason: DownReason,
    },
    /// An IKE SA is gone.
    IkeSaDown {
        /// The handle.
        handle: IkeSaHandle,
        /// The peer configuration's name.
        peer: String,
        /// Why.
        reason: DownReason,
    },
    /// A Child SA was rekeyed (make-before-break, RFC 7296 §2.8, R-V2-10): switch outbound
    /// traffic of the policy to `new_outbound_spi` now, and keep the old inbound SA until
    /// its [`Event::ChildSaDown`] (packets in flight still arrive on it).
    ///
    /// Guarantees, so that no packet is lost:
    /// - it follows the [`Event::ChildSaUp`] of the new pair, and precedes the
    ///   [`Event::ChildSaDown`] of the old one;
    /// - the peer has installed the new pair's inbound SA by then. The initiator of the
    ///   rekey reports it when the response arrives (the responder installed the pair before
    ///   answering). The responder reports it only when the peer proves it processed the
    ///   response: its DELETE of the old pair (or any later request) arrives; failing that,
    ///   after the total retransmission time of [`EndpointConfig::retransmit`](crate::v2::EndpointConfig).
    ///   In a rekey collision (§2.8.1) each side follows the rule of the exchange that made
    ///   the surviving pair;
    /// - the peer still has the old pair's inbound SA: the peer removes it only after this
    ///   side answered its DELETE (§1.4.1), which comes after this event.
    ChildSaRekeyed {
        /// The IKE SA.
        ike_sa: IkeSaHandle,
        /// The old pair's inbound SPI.
        old_inbound_spi: Spi,
        /// The new pair's inbound SPI.
        new_inbound_spi: Spi,
        /// The new pair's outbound SPI.
        new_outbound_spi: Spi,
    },
    /// The outbound SA of a pair announced with [`ChildSaInfo::outbound_deferred`] (and
    /// replacing no other pair) may carry traffic now.
    ChildSaOutbound {
        /// The IKE SA.
        ike_sa: IkeSaHandle,
        /// The pair's inbound SPI.
        inbound_spi: Spi,
    },
    /// A Child SA reached its hard lifetime: stop using it now. A delete exchange follows,
    /// ending with [`Event::ChildSaDown`].
    ChildSaExpired {
        /// The IKE SA.
        ike_sa: IkeSaHandle,
        /// Inbound SPI.
        inbound_spi: Spi,
        /// Outbound SPI.
        outbound_spi: Spi,
    },
    /// An IKE SA was rekeyed (RFC 7296 §2.18): `new` replaces `old` and carries all its
    /// Child SAs (their SPIs and keys do not change). No [`Event::IkeSaDown`] follows for
    /// `old`; commands with the old handle reach the new SA.
    IkeSaRekeyed {
        /// The old handle.
        old: IkeSaHandle,
        /// The new IKE SA.
        new: IkeSaInfo,
    },
    /// The peer hinted that an SA may be gone there ([`Hint`]); reported once per request
    /// (or once per notify for [`Hint::InvalidSpi`]), and rate-limited for unprotected ones.
    PeerHint {
        /// The IKE SA.
        handle: IkeSaHandle,
        /// The peer configuration's name.
        peer: String,
        /// What the peer said and what is done about it.
        hint: Hint,
    },
    /// A negotiation (of an IKE SA or a Child SA) failed.
    Failed {
        /// The IKE SA, if one exists.
        handle: Option<IkeSaHandle>,
        /// The peer configuration's name, or the peer's address.
        peer: String,
        /// The exchange that failed.
        exchange: Exchange,
        /// Whether the IKE SA survives (only the Child SA failed).
        ike_sa_survives: bool,
        /// Why.
        reason: Failure,
    },
    /// Messages of an IKE version this build does not serve (IKEv1) were dropped: the first
    /// at once, then one summary per 10 s at most.
    UnservedVersion {
        /// The major version (1).
        major: u8,
        /// Messages dropped since the last report.
        count: u64,
        /// Where they came from (at most 8).
        sources: Vec<SocketAddr>,
    },
    /// `ikev2-preferred`: IKE_SA_INIT with the peer failed or went unanswered, and IKEv1 was
    /// started in its place. Replaces the [`Event::Failed`] the IKEv2 attempt would have
    /// given; a failure of the IKEv1 attempt comes as its own [`Event::Failed`].
    VersionFallback {
        /// The peer configuration's name.
        peer: String,
        /// The IKEv2 SA given up (gone now).
        from: IkeSaHandle,
        /// The IKEv1 SA started in its place; `None` when one with the peer was already
        /// being negotiated or up (the peer started it) and no second one was started.
        to: Option<IkeSaHandle>,
        /// Why IKEv2 gave way.
        why: FallbackReason,
    },
    /// IKE_SA_INIT requests were refused state, challenged with cookies or replaced an old
    /// half-open SA in the last interval: one summary, never one event per packet.
    HalfOpenPressure(PressureReport),
    /// The peer sent its certificate as a hash and URL (RFC 7296 §3.6) and this gateway
    /// fetches: fetch the DER certificate at `url` (HTTP GET, bounded in size and time) and
    /// hand it, or why it could not be had, to `certificate_fetched`. The IKE_AUTH message
    /// waits until then.
    FetchCertificate {
        /// The IKE SA.
        handle: IkeSaHandle,
        /// The peer configuration's name.
        peer: String,
        /// Where the certificate is.
        url: String,
    },
    /// The peer's certificate names a CRL distribution point (`crl-fetch`) for which no
    /// fresh CRL is held: fetch the DER CRL at `url` (HTTP GET, bounded in size and time) and
    /// hand it, or why it could not be had, to `crl_fetched`. The IKE_AUTH message waits
    /// until then.
    FetchCrl {
        /// The IKE SA.
        handle: IkeSaHandle,
        /// The peer configuration's name.
        peer: String,
        /// The distribution point.
        url: String,
    },
}

#[cfg(test)]
mod tests;
