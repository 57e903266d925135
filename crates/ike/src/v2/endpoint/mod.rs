//! The IKEv2 endpoint: every IKE SA of one local socket pair (ports 500 and 4500).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ferrosec_crypto::kdf::ikev2::{ChildSaKeys, psk_auth, verify_psk_auth};
use ferrosec_crypto::{ActiveKeyExchange, HashAlgorithm, Provider, Rng, Secret};
use ferrosec_wire::ikev2::{
    Auth, AuthMethod, CertEncoding, CfgType, Delete, DhGroup, ExchangeType, Flags, Header,
    Identification, KeyExchange, Message, Notify, NotifyType, Packet, Payload, PayloadBody,
    PayloadType, ProtocolId, Sa, TransformType, Version, parse_payloads,
};
use ferrosec_wire::{IkeSpi, MessageId, Spi};

use crate::Transmit;
use crate::event::{
    AuthInfo, ChildKeys, ChildSaInfo, CryptoFailure, DownReason, Event, Failure, FollowupFailure,
    Hint, IkeSaHandle, IkeSaInfo, LocalError, Malformed, ReauthReason, Reauthentication,
};
use crate::halfopen::{HalfOpenGuard, HalfOpenStats, Refusal};
use crate::proposal::{self, OfferRefused, Proposal, SelectOptions, Selected};
use crate::retransmit::{
    Answered, Liveness, RequestClass, RequestDigest, RequestTimeout, Requests, Responses,
    RetransmitPolicy,
};
use crate::ts::{self, Narrowed, TsSet};
use crate::v2::certauth::{self, CertAuth};
use crate::v2::config::{
    ChildPolicy, EndpointConfig, Identity, Lifetimes, PeerConfig, PeerId, PolicyId, SaLifetime,
};
use crate::v2::cookie::{CookieDecision, CookieInput, CookieJar, MAX_COOKIE_LEN};
use crate::v2::protect::IkeKeys;

mod actions;
mod auth;
mod commands;
mod config_payload;
use config_payload::CpSetup;
pub use config_payload::MAX_POOL_ADDRESSES;
mod core;
use self::core::{derivation, peer_kex, unsupported};
mod create_child;
mod crl_cache;
mod dispatch;
mod fetch;
mod followup;
#[cfg(test)]
pub(crate) use followup::Tamper;
use followup::{ChildAnswer, Made, Makes};
mod ike_rekey;
mod informational;
mod intermediate;
use self::intermediate::offers_addke;
mod payloads;
use payloads::Found;
mod nat;
use nat::{nat_detect, nat_hash};
mod peers;
mod protected;
mod reject;
mod sa_init;
mod select;
use select::{ChildChoice, select_child, strip_ke, with_spi};
mod snapshot;
mod table;
mod timers;
mod tombstone;

use reject::Rejection;
use table::SaTable;

pub use peers::PolicyUpdate;
pub use tombstone::TombstoneStats;
use tombstone::Tombstones;

/// The IKE port.
pub const IKE_PORT: u16 = 500;
/// The NAT-T port (RFC 3948, RFC 7296 §2.23).
pub const NATT_PORT: u16 = 4500;
/// Nonce length we send (§2.10: at least 16 and at least half the PRF key size).
const NONCE_LEN: usize = 32;
/// Most handles of rekeyed-away IKE SAs kept as aliases of their successors.
const MAX_ALIASES: usize = 16_384;
/// Most COOKIE or INVALID_KE_PAYLOAD rounds of one IKE_SA_INIT before giving up.
const MAX_INIT_ROUNDS: u8 = 4;

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No peer configuration with that ID.
    #[error("no such peer configuration")]
    NoSuchPeer,
    /// No IKE SA with that handle.
    #[error("no such IKE SA")]
    NoSuchSa,
    /// The IKE SA is not established or has a request in flight; try again later.
    #[error("the IKE SA is busy")]
    Busy,
    /// A configured algorithm is not supported by the crypto provider.
    #[error("configuration: {0}")]
    Config(String),
}

/// The initiator after sending IKE_SA_INIT.
#[derive(Debug)]
struct InitSent {
    ni: Vec<u8>,
    kex: Box<dyn ActiveKeyExchange>,
    cookie: Option<Vec<u8>>,
    rounds: u8,
    /// The request exactly as last sent (the AUTH payload signs it).
    sent: Vec<u8>,
    /// An unprotected error answer seen, which may be forged (§2.21.1): we keep waiting
    /// for a genuine answer until the next retransmission, then give up with it.
    refused: Option<NotifyType>,
}

/// Material both sides keep from IKE_SA_INIT for the AUTH payloads (§2.15).
#[derive(Debug)]
struct InitTranscript {
    /// The IKE_SA_INIT request as sent (the initiator's signed octets start with it).
    msg1: Vec<u8>,
    /// The IKE_SA_INIT response as sent.
    msg2: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    /// The peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4); `None` when it sent none.
    peer_hashes: Option<Vec<u16>>,
    /// The peer announced HTTP_CERT_LOOKUP_SUPPORTED in IKE_SA_INIT: it fetches a
    /// hash-and-URL certificate (§3.6).
    peer_fetches: bool,
    /// RFC 9370 additional key exchanges done in IKE_INTERMEDIATE, and their IntAuth.
    inter: intermediate::Progress,
}

/// The initiator after sending IKE_AUTH.
#[derive(Debug)]
struct AuthSent {
    transcript: InitTranscript,
    /// The AUTH method we sent (for [`crate::event::AuthInfo`]).
    method: AuthMethod,
    child_spi: Spi,
    policy: PolicyId,
    offer: Narrowed,
}

/// The handshake states are boxed so that an established SA (most of them, for most of
/// their life) does not carry their room.
#[derive(Debug)]
enum State {
    /// Initiator: IKE_SA_INIT sent.
    InitSent(Box<InitSent>),
    /// Initiator: IKE_INTERMEDIATE sent (an RFC 9370 additional key exchange).
    IntSent(Box<intermediate::IntSent>),
    /// Initiator: IKE_AUTH sent.
    AuthSent(Box<AuthSent>),
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH (half-open).
    HalfOpen {
        transcript: Box<InitTranscript>,
        expires: Instant,
    },
    /// Authenticated.
    Established,
}

/// Work for an established SA, done one request at a time (window size 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Liveness,
    DeleteIke,
    DeleteChild(Spi),
    /// A new Child SA for a policy, or the rekey of the Child SA with this inbound SPI;
    /// `group` overrides the PFS group (INVALID_KE_PAYLOAD retry), `tries` counts retries.
    CreateChild {
        policy: PolicyId,
        rekey: Option<Spi>,
        group: Option<DhGroup>,
        tries: u8,
    },
    /// Rekey of the IKE SA itself (§1.3.2).
    RekeyIke {
        group: Option<DhGroup>,
        tries: u8,
    },
    /// Tell the peer to delete a Child SA whose answer we rejected: our proposed inbound SPI
    /// (the peer's outbound).
    DeleteRejected(ProtocolId, Spi),
}

/// The lowest nonce of a peer's exchange that crossed ours (§2.8.1), and what it made.
#[derive(Debug, Clone)]
struct Collision {
    /// min(Ni, Nr) of the peer's exchange.
    nonce: Vec<u8>,
    /// Ni and Nr of the peer's exchange (for the test log).
    #[cfg(test)]
    nonces: (Vec<u8>, Vec<u8>),
    /// The Child SA (our inbound SPI) or IKE SA (our SPI) the peer's exchange created.
    created: u64,
    /// The Message ID of the peer's exchange (a later request of the peer proves that it
    /// processed our response, see [`Switch`]).
    made_in: MessageId,
}

/// A CREATE_CHILD_SA request in flight.
#[derive(Debug)]
struct ChildRequest {
    policy: PolicyId,
    rekey: Option<Spi>,
    spi: Spi,
    ni: Vec<u8>,
    kex: Option<Box<dyn ActiveKeyExchange>>,
    offer: Narrowed,
    proposals: Vec<Proposal>,
    tries: u8,
    collision: Option<Collision>,
    /// SPIs the peer deleted while this request was in flight, before we saw the answer
    /// that makes them (a DELETE overtaking the CREATE_CHILD_SA response).
    deleted_early: Vec<Spi>,
}

/// An IKE SA rekey request in flight.
#[derive(Debug)]
struct IkeRekeyRequest {
    spi: IkeSpi,
    ni: Vec<u8>,
    kex: Box<dyn ActiveKeyExchange>,
    proposals: Vec<Proposal>,
    tries: u8,
    collision: Option<Collision>,
}

/// What our request in flight on an established SA is for.
#[derive(Debug)]
enum Pending {
    Work(Work),
    Child(Box<ChildRequest>),
    IkeRekey(Box<IkeRekeyRequest>),
    /// An IKE_FOLLOWUP_KE exchange of our answered CREATE_CHILD_SA (RFC 9370 §2.2.4).
    Followup(Box<followup::Followup>),
}

/// The most work items queued per IKE SA.
const MAX_QUEUED_WORK: usize = 64;
/// The most Child SAs under one IKE SA; more are refused with NO_ADDITIONAL_SAS.
pub(crate) const MAX_CHILD_SAS: usize = 128;
/// After TEMPORARY_FAILURE, retry after this plus a random part of the same length.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(5);
/// Most retries of one rekey or create (INVALID_KE_PAYLOAD, TEMPORARY_FAILURE).
const MAX_TRIES: u8 = 4;
/// Most unprotected error notifies (INVALID_IKE_SPI, INVALID_MAJOR_VERSION) per second.
const MAX_ERROR_NOTIFIES_PER_SEC: u32 = 10;
/// Most liveness checks per second started by unprotected hints (§2.21.4: "An implementation
/// SHOULD limit the frequency of such tests").
const MAX_HINT_CHECKS_PER_SEC: u32 = 10;

/// Counts one event in a one-second window `(start, count)`; false once `max` are spent.
fn per_second(window: &mut (Option<Instant>, u32), now: Instant, max: u32) -> bool {
    let (start, count) = window;
    if start.is_none_or(|t| now.saturating_duration_since(t) >= std::time::Duration::from_secs(1)) {
        *start = Some(now);
        *count = 0;
    }
    if *count >= max {
        return false;
    }
    *count += 1;
    true
}

/// The lifecycle of a Child SA (STYLE.md 6).
///
/// | state | meaning | leaves by |
/// |---|---|---|
/// | `Installed` | in use | our rekey → `Rekeying`; our delete → `Deleting`; peer's rekey → `Rekeyed` |
/// | `Rekeying` | our CREATE_CHILD_SA with REKEY_SA in flight | response → `Rekeyed`; failure → `Installed` |
/// | `Rekeyed` | replaced; the side that won deletes it | delete (ours or the peer's) → gone |
/// | `Deleting` | our delete in flight | response or crossing delete → gone |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// In use.
    Installed,
    /// We are rekeying it.
    Rekeying,
    /// A newer Child SA replaces it; it is about to be deleted.
    Rekeyed,
    /// We are deleting it.
    Deleting,
}

/// A switch of outbound traffic from a Child SA to its replacement that waits until the
/// peer has installed the replacement's inbound SA (R-V2-10, make-before-break).
///
/// The responder of a CREATE_CHILD_SA exchange installs the new pair when it answers; the
/// initiator installs it only when it processes the answer. So the side that answered must
/// not send on the new pair before it knows that the answer was processed: when the peer's
/// DELETE of the old pair arrives (the rekey initiator sends it after the response, §2.8),
/// or any later request of the peer (window size 1, §2.3: the peer sends request N + 1
/// only after it has the response to N), or, should neither come, at `by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Switch {
    /// The replacement (our inbound SPI).
    to: Spi,
    /// The Message ID of the peer's request that made the replacement; `None` once the
    /// Child SAs moved to another IKE SA (only the DELETE or the deadline count then).
    made_in: Option<MessageId>,
    /// Switch anyway at this deadline.
    by: Instant,
}

#[derive(Debug, Clone)]
struct ChildRecord {
    inbound: Spi,
    outbound: Spi,
    protocol: ProtocolId,
    policy: PolicyId,
    state: ChildState,
    /// Rekey (soft lifetime) deadline.
    soft: Option<Instant>,
    /// Delete (hard lifetime) deadline.
    hard: Option<Instant>,
    /// Fingerprints of the keys the data plane got, ours and as the peer sees them, for
    /// [`Endpoint::snapshot`] (the keys and selectors themselves are not kept: the data
    /// plane has them, and they were about 400 bytes per Child SA here).
    fingerprints: ([u8; 8], [u8; 8]),
    /// Replaced by a pair the peer made, outbound traffic not switched yet.
    switch: Option<Switch>,
}

/// The lifecycle of an established IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// In use.
    Normal,
    /// Our rekey of it is in flight.
    Rekeying,
    /// A new IKE SA replaced it (its Child SAs moved there); it only waits for its delete
    /// (which the rekey initiator sends, §2.18) and is forgotten at this deadline otherwise.
    Rekeyed(Instant),
}

#[derive(Debug)]
struct IkeSa {
    peer: PeerId,
    initiator: bool,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
    state: State,
    requests: Requests,
    responses: Responses,
    liveness: Liveness,
    pending: Option<Pending>,
    queue: VecDeque<Work>,
    keys: Option<IkeKeys>,
    proposal: Option<Selected>,
    nat: (bool, bool),
    children: Vec<ChildRecord>,
    life: Life,
    /// The peer's authenticated identity.
    peer_id: Option<Identity>,
    /// How both sides authenticated (once established).
    auth: AuthInfo,
    /// Whether the application was told about it (IkeSaUp or IkeSaRekeyed).
    announced: bool,
    /// min(Ni, Nr) of the exchange that created it (duplicate and collision resolution).
    nonce: Vec<u8>,
    created: Instant,
    established_at: Option<Instant>,
    /// IKE SA rekey (soft) and delete (hard) deadlines.
    soft: Option<Instant>,
    hard: Option<Instant>,
    /// IKE rekeys since the last authentication (R-V2-11).
    rekeys_since_auth: u32,
    /// Re-authentication: the old IKE SA this one replaces, deleted once we are complete.
    replaces: Option<IkeSpi>,
    /// Re-authentication: why we started it (kept for the events).
    reauth_reason: Option<ReauthReason>,
    /// A re-authentication replacing this SA is under way.
    being_replaced: bool,
    /// Work to retry later (TEMPORARY_FAILURE).
    deferred: Vec<(Instant, Work)>,
    /// A redundant SA of a collision we won: deleted by us at this deadline if the peer has
    /// not deleted it by then.
    cleanup_at: Option<Instant>,
    /// An authenticated message of the peer arrived on this SA, so the peer has it: an
    /// INVALID_IKE_SPI for it then hints that the peer lost it, not that the peer has not made
    /// it yet (the responder of an IKE SA rekey may use the new SA before the initiator has
    /// the answer that makes it there).
    peer_seen: bool,
    /// Both sides announced IKE fragmentation in IKE_SA_INIT (RFC 7383 §2.3): our large
    /// protected messages go as fragments, and the peer's fragments are reassembled.
    fragmentation: bool,
    /// The peer's fragmented request and the fragmented response to ours, in progress.
    frags: crate::v2::fragment::Reassembly,
    /// An IKE_AUTH message waiting for the peer's hash-and-URL certificates.
    fetching: Option<Box<fetch::Fetching>>,
    /// What the configuration payload settled (R-V2-12): the addresses we leased to the peer
    /// (released when the SA is forgotten; an IKE SA rekey hands them on) or were given.
    cp: Option<std::sync::Arc<crate::event::VirtualConfig>>,
    /// Responder: the additional key exchanges (IKE_FOLLOWUP_KE, RFC 9370 §2.2.4) the peer
    /// owes for the CREATE_CHILD_SA we answered last; at most one, with a deadline.
    followup: Option<Box<followup::Responding>>,
}

impl IkeSa {
    fn our_spi(&self) -> IkeSpi {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    fn header(&self, exchange: ExchangeType, id: MessageId, response: bool) -> Header {
        Header {
            initiator_spi: self.spi_i,
            responder_spi: self.spi_r,
            version: Version::IKEV2,
            exchange_type: exchange,
            flags: Flags::new(self.initiator, response),
            message_id: id,
        }
    }

    fn half_open(&self) -> bool {
        matches!(self.state, State::HalfOpen { .. })
    }

    fn established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// Established and neither replaced nor being deleted.
    fn usable(&self) -> bool {
        self.established()
            && matches!(self.life, Life::Normal | Life::Rekeying)
            && !matches!(self.pending, Some(Pending::Work(Work::DeleteIke)))
            && !self.queue.contains(&Work::DeleteIke)
    }

    fn pending_delete_of(&self, inbound: Spi) -> bool {
        matches!(self.pending, Some(Pending::Work(Work::DeleteChild(s))) if s == inbound)
            || self.queue.contains(&Work::DeleteChild(inbound))
    }

    fn deleting(&self) -> bool {
        matches!(self.pending, Some(Pending::Work(Work::DeleteIke)))
    }

    fn child(&self, inbound: Spi) -> Option<&ChildRecord> {
        self.children.iter().find(|c| c.inbound == inbound)
    }

    fn child_mut(&mut self, inbound: Spi) -> Option<&mut ChildRecord> {
        self.children.iter_mut().find(|c| c.inbound == inbound)
    }

    /// Adds a Child SA without the capacity slack of `Vec::push` (which goes to four at
    /// once): almost every IKE SA has one Child SA, two only during a rekey.
    fn push_child(&mut self, c: ChildRecord) {
        self.children.reserve_exact(1);
        self.children.push(c);
    }

    /// Removes a Child SA and gives back the room it took.
    fn remove_child(&mut self, pos: usize) -> ChildRecord {
        let c = self.children.remove(pos);
        self.children.shrink_to_fit();
        c
    }

    /// Queues work unless the queue is full.
    fn push_work(&mut self, w: Work) -> bool {
        if self.queue.len() >= MAX_QUEUED_WORK {
            return false;
        }
        self.queue.push_back(w);
        true
    }

    fn push_work_front(&mut self, w: Work) {
        if self.queue.len() >= MAX_QUEUED_WORK {
            self.queue.pop_back();
        }
        self.queue.push_front(w);
    }
}

/// The first 8 bytes of SHA-1 over a Child SA's keys, one direction then the other.
fn key_fingerprint(first: &ChildKeys, second: &ChildKeys) -> [u8; 8] {
    let d = HashAlgorithm::Sha1.digest(&[
        first.encr.expose(),
        first.integ.expose(),
        second.encr.expose(),
        second.integ.expose(),
    ]);
    let mut f = [0u8; 8];
    f.copy_from_slice(&d[..8]);
    f
}

pub(crate) fn min_nonce(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a <= b { a.to_vec() } else { b.to_vec() }
}

/// Whether to keep an SA after handling something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Yes,
    No,
}

/// Work an exchange leaves for the [`Endpoint`] because it reaches beyond the exchange's own
/// SA (the exchanges hold only theirs). The endpoint carries them out in order as soon as the
/// exchange returns, before the SA's queued work is pumped.
#[derive(Debug)]
enum Action {
    /// A new IKE SA made by an IKE SA rekey goes into the table under our SPI.
    Insert(IkeSpi, Box<IkeSa>),
    /// The IKE SA `old` was replaced by `new`: its Child SAs and queued work move there
    /// ([`Endpoint::move_to`]); with `then_delete_old`, `old` then deletes itself first (§2.18).
    MoveTo {
        old: IkeSpi,
        new: IkeSpi,
        then_delete_old: bool,
    },
    /// Run the SA's queued work.
    Pump(IkeSpi),
    /// The SA deletes itself next (the one a completed re-authentication replaces).
    DeleteIke(IkeSpi),
    /// A re-authentication of this SA failed: it may try again at its next deadline.
    Unreplace(IkeSpi),
    /// Re-authenticate this SA (a new IKE SA from IKE_SA_INIT replaces it).
    Reauthenticate { old: IkeSpi, reason: ReauthReason },
    /// Start a new IKE SA with the peer (after the old one was found dead).
    Initiate {
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// Delete a redundant SA of a collision we won at this deadline, if the peer has not.
    CleanupAt(IkeSpi, Instant),
    /// The IKE SA is up with an authenticated peer: INITIAL_CONTACT removes the peer's other
    /// SAs, and a crossing IKE_SA_INIT leaves a duplicate to resolve (§2.4, §2.8.1).
    Established {
        spi: IkeSpi,
        peer_id: Identity,
        initial_contact: bool,
    },
}

/// What the endpoint tells an exchange about the other SAs when it lends it its own.
#[derive(Debug, Default)]
struct Lent {
    /// Another IKE SA of the same peer configuration exists (no INITIAL_CONTACT then).
    peer_has_others: bool,
    /// The old IKE SA of a crossing IKE SA rekey whose peer-made successor is the lent SA: on
    /// the successor's first authentic request its Child SAs move there (§2.8.2). Out of the
    /// table while lent, and put back by the endpoint.
    crossed: Option<(IkeSpi, Box<IkeSa>)>,
}

/// The state of an IKE SA as [`Endpoint::snapshot`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeSaState {
    /// We initiated it: IKE_SA_INIT or IKE_AUTH in flight.
    Connecting,
    /// We responded to IKE_SA_INIT and wait for IKE_AUTH.
    HalfOpen,
    /// Usable.
    Established,
    /// Our rekey of it is in flight.
    Rekeying,
    /// Replaced by a rekey, waiting for its delete.
    Rekeyed,
    /// Our delete of it is in flight.
    Deleting,
}

/// One Child SA in an [`IkeSaSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaSnapshot {
    /// Our inbound SPI.
    pub inbound_spi: Spi,
    /// Our outbound SPI.
    pub outbound_spi: Spi,
    /// Its policy.
    pub policy: PolicyId,
    /// Its lifecycle state.
    pub state: ChildState,
    /// When it is rekeyed (soft lifetime).
    pub rekey_at: Option<Instant>,
    /// When it is deleted (hard lifetime).
    pub expires_at: Option<Instant>,
    /// A fingerprint of the keys (inbound then outbound); equals the peer's
    /// `peer_key_fingerprint` when both ends agree.
    pub key_fingerprint: Vec<u8>,
    /// The same fingerprint over the keys as the peer sees them (outbound then inbound).
    pub peer_key_fingerprint: Vec<u8>,
}

/// One IKE SA as [`Endpoint::snapshot`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaSnapshot {
    /// The handle.
    pub handle: IkeSaHandle,
    /// Its peer configuration.
    pub peer: PeerId,
    /// Whether we initiated the exchange that made it (IKE_SA_INIT or the rekey).
    pub initiator: bool,
    /// SPIi.
    pub spi_i: IkeSpi,
    /// SPIr.
    pub spi_r: IkeSpi,
    /// Its state.
    pub state: IkeSaState,
    /// Whether the application was told about it.
    pub announced: bool,
    /// A fingerprint of SK_d (the same on both ends when they agree on the keys).
    pub key_fingerprint: Vec<u8>,
    /// A request of ours waits for its response.
    pub request_in_flight: bool,
    /// Commands queued or deferred.
    pub queued: usize,
    /// The peer owes IKE_FOLLOWUP_KE requests for a CREATE_CHILD_SA we answered (RFC 9370
    /// §2.2.4): its additional key exchanges are pending here.
    pub awaiting_followup: bool,
    /// When it is rekeyed (soft lifetime).
    pub rekey_at: Option<Instant>,
    /// When it is deleted (hard lifetime).
    pub expires_at: Option<Instant>,
    /// When we re-authenticate it next (`authentication-multiple`; see
    /// [`IkeSaInfo::reauth_at`]).
    pub reauth_at: Option<Instant>,
    /// Its Child SAs.
    pub children: Vec<ChildSaSnapshot>,
}

/// A sans-IO IKEv2 endpoint.
///
/// Feed it datagrams ([`Endpoint::handle_datagram`]) and timeouts
/// ([`Endpoint::handle_timeout`] at [`Endpoint::poll_timeout`]); give it commands
/// ([`Endpoint::initiate`], [`Endpoint::delete_ike_sa`], [`Endpoint::check_liveness`]); take
/// out datagrams ([`Endpoint::poll_transmit`]) and events ([`Endpoint::poll_event`]).
pub struct Endpoint {
    /// Every IKE SA, keyed by our own SPI, with its indexes. Outside [`Core`], so that an
    /// exchange can change its SA in place while it borrows the rest of the endpoint.
    sas: SaTable,
    /// Everything else: what every exchange borrows (configuration, RNG, provider, outbox).
    core: Core,
}

/// What an exchange works with besides its own SA: the peers' configurations, the crypto
/// provider and RNG, cookies, the outbox of datagrams and events, and the endpoint-wide
/// indexes. The exchanges are methods on it taking their SA (`&mut IkeSa`); work that
/// reaches other SAs goes back to the [`Endpoint`] as an [`Action`].
pub struct Core {
    config: EndpointConfig,
    /// By ID, in the order they were added (IDs only grow).
    /// Shared, so that a handler can hold its peer's configuration while it changes the
    /// endpoint, without copying the keys and proposals.
    pub(crate) peers: BTreeMap<PeerId, std::sync::Arc<PeerConfig>>,
    /// Peers served over IKEv1 only (`version = "ikev1"`, [`Endpoint::refuse_ikev2`]): their
    /// IKE_SA_INIT is refused as strongSwan refuses it, with NO_PROPOSAL_CHOSEN.
    v1_only: BTreeSet<PeerId>,
    /// The next [`PeerId`] and [`PolicyId`] to assign (never reused).
    next_ids: (u32, u32),
    provider: Provider,
    rng: Box<dyn Rng + Send>,
    cookies: CookieJar,
    /// Who gets half-open state under a flood; counters and summaries.
    guard: HalfOpenGuard,
    /// Responder: (SPIi, peer address) → our SPI, to spot retransmitted IKE_SA_INIT requests.
    init_index: BTreeMap<(IkeSpi, SocketAddr), IkeSpi>,
    /// Our SPI → its key in `init_index` (so that forgetting an SA is not a walk).
    init_rev: HashMap<IkeSpi, (IkeSpi, SocketAddr)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Per peer configuration (absent: none).
    lifetimes: HashMap<PeerId, Lifetimes>,
    /// Configuration payload per peer configuration (absent: none), with the pools' leases.
    cp: HashMap<PeerId, CpSetup>,
    /// Handles of IKE SAs replaced by a rekey → their successor, so that commands with an
    /// old handle still reach the SA (bounded: entries go with their target).
    aliases: BTreeMap<IkeSpi, IkeSpi>,
    /// Successor → the old handles in `aliases` that point at it.
    alias_rev: HashMap<IkeSpi, BTreeSet<IkeSpi>>,
    /// Rate limit of unprotected error notifies: (window start, count).
    error_notifies: (Option<Instant>, u32),

    /// The last responses of IKE SAs that are gone, for retransmitted requests.
    tombstones: Tombstones,
    /// Rate limit of liveness checks started by unprotected hints: (window start, count).
    hint_checks: (Option<Instant>, u32),
    /// Peers that authenticate with certificates (the others with their PSK).
    certs: HashMap<PeerId, std::sync::Arc<CertAuth>>,
    /// CRLs fetched from distribution points (`crl-fetch`), endpoint-wide.
    crl_cache: crl_cache::CrlCache,
    /// An instant and the wall-clock time then (Unix seconds), for certificate dates.
    wall_clock: Option<(Instant, u64)>,
    /// Liveness checks that went unanswered (each retransmission counts the try before),
    /// per peer configuration, since start.
    liveness_misses: BTreeMap<PeerId, u64>,
    /// Cross-SA work the exchanges left, for the endpoint to carry out.
    actions: Vec<Action>,
    /// What the endpoint told the exchange running now about the other SAs.
    lent: Lent,
    /// Rekey collisions decided, for tests.
    #[cfg(test)]
    pub(crate) collision_log: Vec<CollisionLog>,
    /// Tests: spoils our next IKE_FOLLOWUP_KE request this way (once).
    #[cfg(test)]
    pub(crate) followup_tamper: Option<followup::Tamper>,
    /// Tests: the length of the shared-secret input of each new IKE SA ("ike") and Child SA
    /// ("child") derived by CREATE_CHILD_SA (g^ir and the additional secrets).
    #[cfg(test)]
    pub(crate) kdf_inputs: Vec<(&'static str, usize)>,
    /// SAs [`Endpoint::handle_timeout`] visited, for tests.
    #[cfg(test)]
    pub(crate) timeout_visits: u64,
}

/// A rekey collision as decided by one end (tests check it against §2.8.1).
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct CollisionLog {
    /// IKE SA (true) or Child SA rekey.
    pub(crate) ike: bool,
    /// Ni, Nr of our exchange.
    pub(crate) ours: (Vec<u8>, Vec<u8>),
    /// Ni, Nr of the peer's exchange.
    pub(crate) theirs: (Vec<u8>, Vec<u8>),
    /// Whether our new SA survives.
    pub(crate) won: bool,
    /// Our SPI (IKE) or inbound SPI (Child) of the surviving new SA.
    pub(crate) survivor: u64,
}

impl std::ops::Deref for Endpoint {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl std::ops::DerefMut for Endpoint {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("peers", &self.peers.len())
            .field("sas", &self.sas.len())
            .field("queued_transmits", &self.transmits.len())
            .field("queued_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

fn find_notify<'a>(payloads: &'a [Payload<'a>], ty: NotifyType) -> Option<&'a Notify<'a>> {
    payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

/// The first notify of one of these types in an unprotected message (no SK or SKF payload).
fn unprotected_notify(data: &[u8], types: &[NotifyType]) -> Option<NotifyType> {
    let msg = Message::parse(data).ok()?;
    if msg.payloads.iter().any(|p| {
        matches!(
            p.body,
            PayloadBody::Encrypted(_) | PayloadBody::EncryptedFragment(_)
        )
    }) {
        return None;
    }
    msg.payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if types.contains(&n.ty) => Some(n.ty),
        _ => None,
    })
}

fn first_error_notify(payloads: &[Payload<'_>]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if n.ty.is_error() => Some(n.ty),
        _ => None,
    })
}

/// Whether an unknown payload marked critical is present (§2.5: reject with
/// UNSUPPORTED_CRITICAL_PAYLOAD).
fn unsupported_critical(payloads: &[Payload<'_>]) -> bool {
    payloads
        .iter()
        .any(|p| p.critical && matches!(p.body, PayloadBody::Unknown { .. }))
}

fn offered_proposals(sa: &Sa<'_>) -> Vec<(u8, Proposal)> {
    sa.proposals
        .iter()
        .map(|p| (p.number, Proposal::from_wire(p)))
        .collect()
}

fn proposals_to_wire(ps: &[Proposal]) -> Sa<'_> {
    Sa {
        proposals: ps
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_wire(u8::try_from(i + 1).unwrap_or(u8::MAX)))
            .collect(),
    }
}

fn first_group(ps: &[Proposal]) -> Option<DhGroup> {
    ps.iter()
        .flat_map(|p| p.of_type(TransformType::KE))
        .map(|t| DhGroup(t.id))
        .find(|g| *g != DhGroup::NONE)
}

impl Endpoint {
    /// An endpoint with these peers, a crypto provider and a random generator (seeded in
    /// tests, the OS generator in the daemon).
    pub fn new(
        config: EndpointConfig,
        peers: Vec<PeerConfig>,
        provider: Provider,
        mut rng: Box<dyn Rng + Send>,
        now: Instant,
    ) -> Self {
        let cookies = CookieJar::new(config.cookies, now, &mut *rng);
        let guard = HalfOpenGuard::new(config.half_open);
        let core = Core {
            config,
            peers: BTreeMap::new(),
            v1_only: BTreeSet::new(),
            next_ids: (0, 0),
            provider,
            rng,
            cookies,
            guard,
            init_index: BTreeMap::new(),
            init_rev: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            lifetimes: HashMap::new(),
            cp: HashMap::new(),
            aliases: BTreeMap::new(),
            alias_rev: HashMap::new(),
            error_notifies: (None, 0),

            tombstones: Tombstones::default(),
            hint_checks: (None, 0),
            certs: HashMap::new(),
            crl_cache: crl_cache::CrlCache::default(),
            wall_clock: None,
            liveness_misses: BTreeMap::new(),
            actions: Vec::new(),
            lent: Lent::default(),
            #[cfg(test)]
            collision_log: Vec::new(),
            #[cfg(test)]
            followup_tamper: None,
            #[cfg(test)]
            kdf_inputs: Vec::new(),
            #[cfg(test)]
            timeout_visits: 0,
        };
        let mut ep = Endpoint {
            sas: SaTable::default(),
            core,
        };
        for p in peers {
            ep.add_peer(p);
        }
        ep
    }

    /// Adds a peer configuration; its ID, and those of its policies ([`ChildPolicy::id`]), are
    /// new and never given to another peer or policy of this endpoint. [`Endpoint::new`]
    /// adds its peers in order, so the first has `PeerId(0)`, its first policy `PolicyId(0)`.
    pub fn add_peer(&mut self, mut peer: PeerConfig) -> PeerId {
        let id = PeerId(self.next_ids.0);
        self.next_ids.0 += 1;
        for p in &mut peer.policies {
            p.id = PolicyId(self.next_ids.1);
            self.next_ids.1 += 1;
        }
        self.peers.insert(id, std::sync::Arc::new(peer));
        id
    }

    /// Makes peer configuration `peer` authenticate with certificates instead of its pre-shared
    /// key (RFC 7296 §3.6–3.8, RFC 7427), from the next IKE_SA_INIT on. The peer's certificate
    /// dates are checked against the time given by [`Endpoint::set_wall_clock`].
    pub fn set_certificates(&mut self, peer: PeerId, auth: CertAuth) -> Result<(), CommandError> {
        if !self.peers.contains_key(&peer) {
            return Err(CommandError::NoSuchPeer);
        }
        self.certs.insert(peer, std::sync::Arc::new(auth));
        Ok(())
    }

    /// Tells the engine the wall-clock time (`unix_secs`, seconds since the Unix epoch) at
    /// `now`; later instants are mapped from it. The engine never reads the system clock:
    /// certificate validity is checked against this (call it again to correct drift).
    pub fn set_wall_clock(&mut self, now: Instant, unix_secs: u64) {
        self.wall_clock = Some((now, unix_secs));
    }

    /// Sets the SA lifetimes of peer configuration `peer` (default: none, SAs live until
    /// deleted). Applies to SAs made from now on.
    pub fn set_lifetimes(&mut self, peer: PeerId, l: Lifetimes) -> Result<(), CommandError> {
        if !self.peers.contains_key(&peer) {
            return Err(CommandError::NoSuchPeer);
        }
        self.lifetimes.insert(peer, l);
        Ok(())
    }

    /// The current handle of an IKE SA, following rekeys.
    fn resolve(&self, h: IkeSaHandle) -> IkeSaHandle {
        let mut spi = h.0;
        for _ in 0..16 {
            if self.sas.contains_key(&spi) {
                return IkeSaHandle(spi);
            }
            match self.aliases.get(&spi) {
                Some(next) => spi = *next,
                None => break,
            }
        }
        h
    }

    /// The peer configurations with their IDs, in the order they were added.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &PeerConfig)> {
        self.peers.iter().map(|(id, p)| (*id, &**p))
    }

    /// The peer configuration with this ID.
    pub fn peer(&self, id: PeerId) -> Option<&PeerConfig> {
        self.peers.get(&id).map(|p| &**p)
    }

    /// The number of IKE SAs (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Checks the SA table's indexes against a walk over its SAs (panics on a difference).
    #[cfg(test)]
    pub(crate) fn assert_tables_consistent(&mut self) {
        self.sas.assert_consistent();
    }

    /// Liveness checks (empty INFORMATIONAL requests) that went unanswered, per peer
    /// configuration, since start: every retransmission of one counts the try before.
    pub fn liveness_misses(&self) -> &BTreeMap<PeerId, u64> {
        &self.core.liveness_misses
    }

    /// The number of half-open IKE SAs (responder, IKE_AUTH not yet received).
    pub fn half_open_count(&self) -> usize {
        self.sas.half_open_count()
    }

    /// Whether an IKE SA of peer configuration `peer` is being negotiated by us (IKE_SA_INIT
    /// or IKE_AUTH in flight), for instance the one started again after the peer was declared
    /// dead. Walks the SAs only when the peer has any.
    pub fn negotiating(&self, peer: PeerId) -> bool {
        self.sas.has_peer(peer)
            && self
                .sas
                .values()
                .any(|s| s.peer == peer && s.state.initiating())
    }

    /// Handles of the established IKE SAs.
    pub fn established(&self) -> Vec<IkeSaHandle> {
        self.sas
            .values()
            .filter(|s| matches!(s.state, State::Established))
            .map(|s| IkeSaHandle(s.our_spi()))
            .collect()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event. Drain them after every `handle_*` call and command: none is ever
    /// dropped, so the queue grows with what is not taken.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] is to be called next.
    ///
    /// O(1): every SA's next deadline is kept in a queue as the SA changes, and the
    /// tombstones ask only for their oldest.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            Some(self.cookies.poll_timeout()),
            self.sas.next_deadline(),
            self.guard.poll_timeout(),
            self.tombstones.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Half-open counters since start: cookies sent, requests refused by reason, SAs
    /// replaced (for `show vpn ike-counters`).
    pub fn half_open_stats(&self) -> HalfOpenStats {
        self.guard.stats()
    }

    /// Sets the measured time one responder key exchange of IANA group `group` takes (for
    /// the key-exchange budget under pressure; the daemon measures it at start).
    pub fn set_dh_cost(&mut self, group: u16, cost: std::time::Duration) {
        self.guard.set_dh_cost(group, cost);
    }

    /// The half-open limits in force: (cookie activation threshold, global maximum,
    /// per address).
    pub fn half_open_limits(&self) -> (usize, usize, usize) {
        let c = self.cookies.config();
        (
            c.activation_threshold,
            c.max_half_open,
            self.guard.limits().per_address,
        )
    }

    // -----------------------------------------------------------------------------------
    // Commands

    /// The retransmission policy in use.
    pub fn retransmit_policy(&self) -> RetransmitPolicy {
        self.config.retransmit
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Events are never dropped: 10,000 queued without a poll (the old queue kept the newest
    /// 4,096) all come out, in order.
    #[test]
    fn ten_thousand_events_queued_all_reach_the_consumer_in_order() {
        use rand_core::SeedableRng;
        let mut ep = Endpoint::new(
            EndpointConfig::default(),
            Vec::new(),
            Provider::default(),
            Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(1)),
            crate::sim::epoch(),
        );
        for i in 0..10_000u32 {
            ep.event(Event::ChildSaDown {
                ike_sa: IkeSaHandle(IkeSpi(1)),
                inbound_spi: Spi(i),
                outbound_spi: Spi(i),
                reason: DownReason::IkeSaGone,
            });
        }
        for i in 0..10_000u32 {
            match ep.poll_event() {
                Some(Event::ChildSaDown { inbound_spi, .. }) => assert_eq!(inbound_spi, Spi(i)),
                other => panic!("event {i}: {other:?}"),
            }
        }
        assert!(ep.poll_event().is_none());
    }

    /// Memory per IKE SA (issue 7: at most 8 KiB per IKE SA with a Child SA pair at 10,000
    /// SAs; `examples/mem_per_sa.rs` measures it). The SA is boxed in the table, so its size
    /// is paid once per SA; keyed crypters (about 1.4 KB each inline) must not come back
    /// into it.
    #[test]
    fn an_ike_sa_stays_small() {
        use std::mem::size_of;
        assert!(
            size_of::<IkeKeys>() <= 256,
            "IkeKeys: {}",
            size_of::<IkeKeys>()
        );
        assert!(size_of::<IkeSa>() <= 1024, "IkeSa: {}", size_of::<IkeSa>());
        assert!(
            size_of::<ChildRecord>() <= 512,
            "ChildRecord: {}",
            size_of::<ChildRecord>()
        );
    }
}
