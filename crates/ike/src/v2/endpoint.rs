//! The IKEv2 endpoint: every IKE SA of one local socket pair (ports 500 and 4500).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ferrosec_crypto::kdf::ikev2::{ChildSaKeys, psk_auth, verify_psk_auth};
use ferrosec_crypto::{ActiveKeyExchange, HashAlgorithm, Provider, Rng, Secret};
use ferrosec_wire::ikev2::{
    Auth, AuthMethod, Delete, DhGroup, ExchangeType, Flags, Header, Identification, KeyExchange,
    Message, Notify, NotifyType, Packet, Payload, PayloadBody, ProtocolId, Sa, TransformType,
    Version, parse_payloads,
};
use ferrosec_wire::{IkeSpi, MessageId, Spi};

use crate::Transmit;
use crate::cookie::{CookieDecision, CookieInput, CookieJar, MAX_COOKIE_LEN};
use crate::proposal::{self, Proposal, SelectOptions, Selected};
use crate::retransmit::{
    Liveness, RequestClass, RequestTimeout, Requests, Responses, RetransmitPolicy,
};
use crate::ts::{self, Narrowed, TsSet};
use crate::v2::config::{EndpointConfig, Identity, Lifetimes, PeerConfig, SaLifetime};
use crate::v2::event::{
    ChildKeys, ChildSaInfo, DownReason, Event, Failure, IkeSaHandle, IkeSaInfo,
};
use crate::v2::protect::IkeKeys;

/// The IKE port.
pub const IKE_PORT: u16 = 500;
/// The NAT-T port (RFC 3948, RFC 7296 §2.23).
pub const NATT_PORT: u16 = 4500;
/// Nonce length we send (§2.10: at least 16 and at least half the PRF key size).
const NONCE_LEN: usize = 32;
/// Most events kept for [`Endpoint::poll_event`]; older ones are dropped beyond it.
const MAX_EVENTS: usize = 4096;
/// Most COOKIE or INVALID_KE_PAYLOAD rounds of one IKE_SA_INIT before giving up.
const MAX_INIT_ROUNDS: u8 = 4;

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No peer configuration with that index.
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
}

/// The initiator after sending IKE_AUTH.
#[derive(Debug)]
struct AuthSent {
    transcript: InitTranscript,
    child_spi: Spi,
    policy: usize,
    offer: Narrowed,
}

/// The handshake states are boxed so that an established SA (most of them, for most of
/// their life) does not carry their room.
#[derive(Debug)]
enum State {
    /// Initiator: IKE_SA_INIT sent.
    InitSent(Box<InitSent>),
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
        policy: usize,
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
    policy: usize,
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
    policy: usize,
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
    peer: usize,
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
    /// A re-authentication replacing this SA is under way.
    being_replaced: bool,
    /// Work to retry later (TEMPORARY_FAILURE).
    deferred: Vec<(Instant, Work)>,
    /// A redundant SA of a collision we won: deleted by us at this deadline if the peer has
    /// not deleted it by then.
    cleanup_at: Option<Instant>,
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
    /// The policy index.
    pub policy: usize,
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
    /// The peer configuration index.
    pub peer: usize,
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
    /// When it is rekeyed (soft lifetime).
    pub rekey_at: Option<Instant>,
    /// When it is deleted (hard lifetime).
    pub expires_at: Option<Instant>,
    /// Its Child SAs.
    pub children: Vec<ChildSaSnapshot>,
}

/// The IKE SAs of an endpoint, keyed by our own SPI, with the indexes that spare the
/// per-message and per-timeout paths a walk over every SA (R-PERF: the cost of a handshake
/// or a timeout must not grow with the number of SAs).
///
/// An SA is only changed while it is out of the table ([`SaTable::remove`], then
/// [`SaTable::insert`]) or through [`SaTable::update`], so that every index is rebuilt from
/// its fields as it goes back in: its next deadline in a timer queue, the half-open count,
/// the SAs per peer configuration and per authenticated identity.
#[derive(Debug, Default)]
struct SaTable {
    /// A BTreeMap so that iteration is deterministic. Boxed: a B-tree node holds eleven
    /// values and is on average about two thirds full, so inline SAs would cost half as much
    /// again in slack, and every insert would shift whole SAs around inside a node.
    map: BTreeMap<IkeSpi, Box<IkeSa>>,
    /// (next deadline, SPI) of every SA that has one.
    timers: BTreeSet<(Instant, IkeSpi)>,
    /// The deadline each SA is queued with in `timers`.
    deadline: HashMap<IkeSpi, Instant>,
    half_open: usize,
    /// Peer configuration → number of SAs.
    per_peer: HashMap<usize, usize>,
    /// (peer configuration, authenticated peer identity) → SAs, in SPI order (a sorted
    /// vector of exact capacity: almost always one SA, where a BTreeSet takes a 100-byte
    /// node).
    by_identity: HashMap<(usize, Identity), Vec<IkeSpi>>,
}

impl SaTable {
    /// When the SA needs [`Endpoint::handle_timeout`] next.
    fn next_deadline(sa: &IkeSa) -> Option<Instant> {
        [
            sa.requests.poll_timeout(),
            match &sa.state {
                State::HalfOpen { expires, .. } => Some(*expires),
                State::Established
                    if !sa.requests.busy() && !matches!(sa.life, Life::Rekeyed(_)) =>
                {
                    sa.liveness.poll_timeout()
                }
                _ => None,
            },
            Endpoint::sa_deadlines(sa),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn index(&mut self, spi: IkeSpi, sa: &IkeSa) {
        if let Some(t) = Self::next_deadline(sa) {
            self.timers.insert((t, spi));
            self.deadline.insert(spi, t);
        }
        if sa.half_open() {
            self.half_open += 1;
        }
        *self.per_peer.entry(sa.peer).or_insert(0) += 1;
        if let Some(id) = &sa.peer_id {
            let v = self.by_identity.entry((sa.peer, id.clone())).or_default();
            if let Err(pos) = v.binary_search(&spi) {
                v.reserve_exact(1);
                v.insert(pos, spi);
            }
        }
    }

    fn unindex(&mut self, spi: IkeSpi, sa: &IkeSa) {
        if let Some(t) = self.deadline.remove(&spi) {
            self.timers.remove(&(t, spi));
        }
        if sa.half_open() {
            self.half_open -= 1;
        }
        if let Some(n) = self.per_peer.get_mut(&sa.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&sa.peer);
            }
        }
        if let Some(id) = &sa.peer_id {
            let key = (sa.peer, id.clone());
            if let Some(set) = self.by_identity.get_mut(&key) {
                if let Ok(pos) = set.binary_search(&spi) {
                    set.remove(pos);
                    set.shrink_to_fit();
                }
                if set.is_empty() {
                    self.by_identity.remove(&key);
                }
            }
        }
    }

    fn insert(&mut self, spi: IkeSpi, sa: impl Into<Box<IkeSa>>) {
        let sa = sa.into();
        if let Some(old) = self.map.remove(&spi) {
            // Never happens (SPIs are unique), but keep the indexes right if it does.
            self.unindex(spi, &old);
        }
        self.index(spi, &sa);
        self.map.insert(spi, sa);
    }

    fn remove(&mut self, spi: &IkeSpi) -> Option<Box<IkeSa>> {
        let sa = self.map.remove(spi)?;
        self.unindex(*spi, &sa);
        Some(sa)
    }

    /// Changes an SA in place and re-indexes it.
    fn update<R>(&mut self, spi: &IkeSpi, f: impl FnOnce(&mut IkeSa) -> R) -> Option<R> {
        let mut sa = self.remove(spi)?;
        let r = f(&mut sa);
        self.insert(*spi, sa);
        Some(r)
    }

    fn get(&self, spi: &IkeSpi) -> Option<&IkeSa> {
        self.map.get(spi).map(|v| &**v)
    }

    fn contains_key(&self, spi: &IkeSpi) -> bool {
        self.map.contains_key(spi)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn values(&self) -> impl Iterator<Item = &IkeSa> {
        self.map.values().map(|b| &**b)
    }

    fn iter(&self) -> impl Iterator<Item = (&IkeSpi, &IkeSa)> {
        self.map.iter().map(|(k, v)| (k, &**v))
    }

    /// The earliest deadline of any SA.
    fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The SAs whose deadline is at or before `now`, in SPI order.
    fn due(&self, now: Instant) -> Vec<IkeSpi> {
        let mut v: Vec<IkeSpi> = self
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, s)| *s)
            .collect();
        v.sort_unstable();
        v
    }

    fn half_open_count(&self) -> usize {
        self.half_open
    }

    fn has_peer(&self, peer: usize) -> bool {
        self.per_peer.contains_key(&peer)
    }

    /// The SAs of a peer configuration authenticated as `id`, in SPI order.
    fn with_identity(&self, peer: usize, id: &Identity) -> Vec<IkeSpi> {
        self.by_identity
            .get(&(peer, id.clone()))
            .map(|s| s.to_vec())
            .unwrap_or_default()
    }
}

/// A sans-IO IKEv2 endpoint.
///
/// Feed it datagrams ([`Endpoint::handle_datagram`]) and timeouts
/// ([`Endpoint::handle_timeout`] at [`Endpoint::poll_timeout`]); give it commands
/// ([`Endpoint::initiate`], [`Endpoint::delete_ike_sa`], [`Endpoint::check_liveness`]); take
/// out datagrams ([`Endpoint::poll_transmit`]) and events ([`Endpoint::poll_event`]).
pub struct Endpoint {
    config: EndpointConfig,
    pub(crate) peers: Vec<PeerConfig>,
    provider: Provider,
    rng: Box<dyn Rng + Send>,
    cookies: CookieJar,
    /// Keyed by our own SPI, with a timer queue and lookup indexes.
    sas: SaTable,
    /// Responder: (SPIi, peer address) → our SPI, to spot retransmitted IKE_SA_INIT requests.
    init_index: BTreeMap<(IkeSpi, SocketAddr), IkeSpi>,
    /// Our SPI → its key in `init_index` (so that forgetting an SA is not a walk).
    init_rev: HashMap<IkeSpi, (IkeSpi, SocketAddr)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Per peer configuration.
    lifetimes: Vec<Lifetimes>,
    /// Handles of IKE SAs replaced by a rekey → their successor, so that commands with an
    /// old handle still reach the SA (bounded: entries go with their target).
    aliases: BTreeMap<IkeSpi, IkeSpi>,
    /// Successor → the old handles in `aliases` that point at it.
    alias_rev: HashMap<IkeSpi, BTreeSet<IkeSpi>>,
    /// Rate limit of unprotected error notifies: (window start, count).
    error_notifies: (Option<Instant>, u32),
    /// Rekey collisions decided, for tests.
    #[cfg(test)]
    pub(crate) collision_log: Vec<CollisionLog>,
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

fn nat_hash(spi_i: IkeSpi, spi_r: IkeSpi, addr: SocketAddr) -> Vec<u8> {
    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.23
    //# The data associated with these Notify types is the SHA-1 digest of the SPIs (in
    //# the order they appear in the header), IP address, and port
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    HashAlgorithm::Sha1.digest(&[
        &spi_i.0.to_be_bytes(),
        &spi_r.0.to_be_bytes(),
        &ip,
        &addr.port().to_be_bytes(),
    ])
}

/// What we learn from the NAT_DETECTION notifies of a message we received: (we are behind a
/// NAT, the peer is). `None` if the peer sent none.
fn nat_detect(
    payloads: &[Payload<'_>],
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<(bool, bool)> {
    let mut src = Vec::new();
    let mut dst = None;
    for p in payloads {
        if let PayloadBody::Notify(n) = &p.body {
            match n.ty {
                NotifyType::NAT_DETECTION_SOURCE_IP => src.push(n.data),
                NotifyType::NAT_DETECTION_DESTINATION_IP => dst = Some(n.data),
                _ => {}
            }
        }
    }
    let dst = dst?;
    if src.is_empty() {
        return None;
    }
    let local_nat = nat_hash(spi_i, spi_r, local) != dst;
    let want = nat_hash(spi_i, spi_r, remote);
    let remote_nat = !src.contains(&want.as_slice());
    Some((local_nat, remote_nat))
}

fn find_notify<'a>(payloads: &'a [Payload<'a>], ty: NotifyType) -> Option<&'a Notify<'a>> {
    payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if n.ty == ty => Some(n),
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

fn strip_ke(ps: &[Proposal]) -> Vec<Proposal> {
    ps.iter()
        .map(|p| Proposal {
            protocol: p.protocol,
            spi: p.spi.clone(),
            transforms: p
                .transforms
                .iter()
                .filter(|t| t.ty != TransformType::KE)
                .copied()
                .collect(),
        })
        .collect()
}

fn with_spi(ps: &[Proposal], spi: Spi) -> Vec<Proposal> {
    ps.iter()
        .map(|p| Proposal {
            spi: spi.0.to_be_bytes().to_vec(),
            ..p.clone()
        })
        .collect()
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
        Endpoint {
            config,
            peers,
            provider,
            rng,
            cookies,
            sas: SaTable::default(),
            init_index: BTreeMap::new(),
            init_rev: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            lifetimes: Vec::new(),
            aliases: BTreeMap::new(),
            alias_rev: HashMap::new(),
            error_notifies: (None, 0),
            #[cfg(test)]
            collision_log: Vec::new(),
            #[cfg(test)]
            timeout_visits: 0,
        }
    }

    /// Sets the SA lifetimes of peer configuration `peer` (default: none, SAs live until
    /// deleted). Applies to SAs made from now on.
    pub fn set_lifetimes(&mut self, peer: usize, l: Lifetimes) -> Result<(), CommandError> {
        if peer >= self.peers.len() {
            return Err(CommandError::NoSuchPeer);
        }
        if self.lifetimes.len() < self.peers.len() {
            self.lifetimes
                .resize(self.peers.len(), Lifetimes::default());
        }
        self.lifetimes[peer] = l;
        Ok(())
    }

    fn lifetimes_of(&self, peer: usize) -> Lifetimes {
        self.lifetimes.get(peer).copied().unwrap_or_default()
    }

    /// (soft, hard) deadlines for an SA made at `now`.
    fn deadlines(
        &mut self,
        now: Instant,
        l: Option<SaLifetime>,
    ) -> (Option<Instant>, Option<Instant>) {
        let Some(l) = l else {
            return (None, None);
        };
        let jitter_ns = u64::try_from(l.jitter.as_nanos()).unwrap_or(u64::MAX);
        let r = if jitter_ns == 0 {
            0
        } else {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            u64::from_be_bytes(b) % jitter_ns.saturating_add(1)
        };
        let early = l
            .margin
            .saturating_add(std::time::Duration::from_nanos(r))
            .min(l.lifetime);
        (Some(now + (l.lifetime - early)), Some(now + l.lifetime))
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

    /// The peer configurations.
    pub fn peers(&self) -> &[PeerConfig] {
        &self.peers
    }

    /// The number of IKE SAs (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// The number of half-open IKE SAs (responder, IKE_AUTH not yet received).
    pub fn half_open_count(&self) -> usize {
        self.sas.half_open_count()
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

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] is to be called next.
    ///
    /// O(1): every SA's next deadline is kept in a queue as the SA changes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.cookies.poll_timeout();
        Some(self.sas.next_timer().map_or(t, |s| t.min(s)))
    }

    fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v);
        v
    }

    fn new_ike_spi(&mut self) -> IkeSpi {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let spi = IkeSpi(u64::from_be_bytes(b));
            if spi.0 != 0 && !self.sas.contains_key(&spi) {
                return spi;
            }
        }
    }

    fn new_child_spi(&mut self) -> Spi {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let spi = Spi(u32::from_be_bytes(b));
            // SPIs 1-255 are reserved by IANA (RFC 4303 §2.1).
            if spi.0 > 255 {
                return spi;
            }
        }
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, msg: &[u8]) {
        if self.transmits.len() >= self.config.max_queued_transmits {
            return;
        }
        // RFC 3948 §2.2 / RFC 7296 §2.23: on port 4500 IKE messages carry the non-ESP marker.
        let data = if local.port() == NATT_PORT || remote.port() == NATT_PORT {
            let mut d = Vec::with_capacity(msg.len() + 4);
            d.extend_from_slice(&[0, 0, 0, 0]);
            d.extend_from_slice(msg);
            d
        } else {
            msg.to_vec()
        };
        self.transmits.push_back(Transmit {
            local,
            remote,
            data,
        });
    }

    fn failed(&mut self, sa: Option<&IkeSa>, peer: String, survives: bool, reason: Failure) {
        self.event(Event::Failed {
            handle: sa.map(|s| IkeSaHandle(s.our_spi())),
            peer,
            ike_sa_survives: survives,
            reason,
        });
    }

    // -----------------------------------------------------------------------------------
    // Commands

    /// Starts an IKE SA with peer `peer` (an index into the configurations) from `local` to
    /// `remote` (normally port 500 on both sides).
    pub fn initiate(
        &mut self,
        now: Instant,
        peer: usize,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaHandle, CommandError> {
        let cfg = self.peers.get(peer).ok_or(CommandError::NoSuchPeer)?;
        let group = first_group(&cfg.ike_proposals)
            .ok_or_else(|| CommandError::Config("IKE proposals name no DH group".into()))?;
        let liveness = cfg.liveness;
        let kex = self
            .provider
            .key_exchange(group.0)
            .and_then(|k| k.start(&mut *self.rng))
            .map_err(|e| CommandError::Config(e.to_string()))?;
        let spi_i = self.new_ike_spi();
        let ni = self.random_bytes(NONCE_LEN);
        let mut sa = IkeSa {
            peer,
            initiator: true,
            spi_i,
            spi_r: IkeSpi(0),
            local,
            remote,
            state: State::InitSent(Box::new(InitSent {
                ni,
                kex,
                cookie: None,
                rounds: 0,
                sent: Vec::new(),
            })),
            requests: Requests::new(MessageId(0)),
            responses: Responses::new(MessageId(0)),
            liveness: Liveness::new(liveness, now),
            pending: None,
            queue: VecDeque::new(),
            keys: None,
            proposal: None,
            nat: (false, false),
            children: Vec::new(),
            life: Life::Normal,
            peer_id: None,
            announced: false,
            nonce: Vec::new(),
            created: now,
            established_at: None,
            soft: None,
            hard: None,
            rekeys_since_auth: 0,
            replaces: None,
            being_replaced: false,
            deferred: Vec::new(),
            cleanup_at: None,
        };
        let msg = self
            .init_request(&sa)
            .map_err(|e| CommandError::Config(e.to_string()))?;
        if let State::InitSent(st) = &mut sa.state {
            st.sent = msg.clone();
        }
        sa.requests
            .start(now, vec![msg.clone()], self.config.retransmit);
        self.send(local, remote, &msg);
        self.sas.insert(spi_i, sa);
        Ok(IkeSaHandle(spi_i))
    }

    /// Deletes an established IKE SA (and its Child SAs) with an INFORMATIONAL exchange.
    pub fn delete_ike_sa(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        self.enqueue(now, h, Work::DeleteIke)
    }

    /// Creates another Child SA under an IKE SA for policy `policy` (an index into the peer
    /// configuration's policies) with CREATE_CHILD_SA.
    pub fn create_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        policy: usize,
    ) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get(&h.0).ok_or(CommandError::NoSuchSa)?;
        if policy >= self.peers[sa.peer].policies.len() {
            return Err(CommandError::Config("no such policy".into()));
        }
        self.enqueue(
            now,
            h,
            Work::CreateChild {
                policy,
                rekey: None,
                group: None,
                tries: 0,
            },
        )
    }

    /// Rekeys the Child SA pair with this inbound SPI (RFC 7296 §2.8): a new pair is made
    /// with CREATE_CHILD_SA and REKEY_SA, then the old one is deleted (make-before-break).
    /// The data plane calls this at its soft byte limit.
    pub fn rekey_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        inbound: Spi,
    ) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get(&h.0).ok_or(CommandError::NoSuchSa)?;
        let Some(c) = sa.child(inbound) else {
            return Err(CommandError::NoSuchSa);
        };
        let policy = c.policy;
        self.enqueue(
            now,
            h,
            Work::CreateChild {
                policy,
                rekey: Some(inbound),
                group: None,
                tries: 0,
            },
        )
    }

    /// Rekeys the IKE SA (RFC 7296 §1.3.2, §2.18): a new IKE SA with new SPIs and keys
    /// derived from the old SK_d takes over the Child SAs, then the old one is deleted.
    /// The handle changes ([`Event::IkeSaRekeyed`]); the old one keeps working for commands.
    pub fn rekey_ike_sa(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        self.enqueue(
            now,
            h,
            Work::RekeyIke {
                group: None,
                tries: 0,
            },
        )
    }

    /// Re-authenticates (R-V2-11, RFC 7296 §2.8.3): a new IKE SA from IKE_SA_INIT with new
    /// Child SAs for every policy; once they are up the old IKE SA is deleted. Returns the
    /// new IKE SA's handle.
    pub fn reauthenticate(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
    ) -> Result<IkeSaHandle, CommandError> {
        let h = self.resolve(h);
        let mut sa = self.sas.remove(&h.0).ok_or(CommandError::NoSuchSa)?;
        let r = if sa.usable() && !sa.being_replaced {
            self.start_reauth(now, &mut sa)
        } else {
            Err(CommandError::Busy)
        };
        self.sas.insert(h.0, sa);
        r
    }

    fn start_reauth(&mut self, now: Instant, old: &mut IkeSa) -> Result<IkeSaHandle, CommandError> {
        let local = SocketAddr::new(old.local.ip(), IKE_PORT);
        let remote = SocketAddr::new(old.remote.ip(), IKE_PORT);
        let new = self.initiate(now, old.peer, local, remote)?;
        let ours = old.our_spi();
        self.sas.update(&new.0, |n| n.replaces = Some(ours));
        old.being_replaced = true;
        Ok(new)
    }

    /// Deletes one Child SA pair (named by its inbound SPI). The data plane calls this at
    /// its hard byte limit.
    pub fn delete_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        inbound: Spi,
    ) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get(&h.0).ok_or(CommandError::NoSuchSa)?;
        if sa.child(inbound).is_none() {
            return Err(CommandError::NoSuchSa);
        }
        self.enqueue(now, h, Work::DeleteChild(inbound))
    }

    /// Sends a liveness check now (an empty INFORMATIONAL request).
    pub fn check_liveness(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        self.enqueue(now, h, Work::Liveness)
    }

    /// Queues work on an SA and starts it if the SA is idle.
    fn enqueue(&mut self, now: Instant, h: IkeSaHandle, work: Work) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let mut sa = self.sas.remove(&h.0).ok_or(CommandError::NoSuchSa)?;
        let r = if matches!(sa.life, Life::Rekeyed(_)) {
            Err(CommandError::NoSuchSa)
        } else if sa.push_work(work) {
            Ok(())
        } else {
            Err(CommandError::Busy)
        };
        self.pump(now, &mut sa);
        self.sas.insert(h.0, sa);
        r
    }

    /// Starts queued work while the SA is established and idle.
    fn pump(&mut self, now: Instant, sa: &mut IkeSa) {
        while sa.established() && !sa.requests.busy() {
            let Some(work) = sa.queue.pop_front() else {
                break;
            };
            if matches!(sa.life, Life::Rekeyed(_)) && work != Work::DeleteIke {
                // Replaced: only its delete is still to be done here.
                continue;
            }
            let _ = match work {
                Work::CreateChild {
                    policy,
                    rekey,
                    group,
                    tries,
                } => self.start_create_child(now, sa, policy, rekey, group, tries),
                Work::RekeyIke { group, tries } => self.start_ike_rekey(now, sa, group, tries),
                w => self.start_informational(now, sa, w),
            };
        }
        // Re-authentication: the old IKE SA goes once every Child SA of the new one is up.
        if let Some(old) = sa.replaces
            && sa.established()
            && sa.announced
            && !sa.requests.busy()
            && !matches!(sa.pending, Some(Pending::Child(_)))
            && !sa
                .queue
                .iter()
                .any(|w| matches!(w, Work::CreateChild { .. }))
        {
            sa.replaces = None;
            if let Some(mut o) = self.sas.remove(&old) {
                o.push_work_front(Work::DeleteIke);
                self.pump(now, &mut o);
                self.sas.insert(old, o);
            }
        }
    }

    fn start_informational(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        what: Work,
    ) -> Result<(), CommandError> {
        if !sa.established() || sa.requests.busy() {
            return Err(CommandError::Busy);
        }
        let spis;
        let mut inner = Vec::new();
        match what {
            Work::Liveness | Work::CreateChild { .. } | Work::RekeyIke { .. } => {}
            Work::DeleteIke => inner.push(Payload::new(PayloadBody::Delete(Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: &[],
            }))),
            Work::DeleteChild(inbound) => {
                let Some(c) = sa.child_mut(inbound) else {
                    return Err(CommandError::NoSuchSa);
                };
                c.state = ChildState::Deleting;
                c.soft = None;
                let proto = c.protocol;
                spis = inbound.0.to_be_bytes();
                inner.push(Payload::new(PayloadBody::Delete(Delete {
                    protocol: proto,
                    spi_size: 4,
                    spis: &spis,
                })));
            }
            Work::DeleteRejected(proto, spi) => {
                spis = spi.0.to_be_bytes();
                inner.push(Payload::new(PayloadBody::Delete(Delete {
                    protocol: proto,
                    spi_size: 4,
                    spis: &spis,
                })));
            }
        }
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::INFORMATIONAL, id, false);
        let Some(keys) = &sa.keys else {
            return Err(CommandError::Busy);
        };
        let msg = keys
            .seal(&mut *self.rng, header, &inner)
            .map_err(|e| CommandError::Config(e.to_string()))?;
        let policy = match what {
            Work::Liveness => sa.liveness.policy().unwrap_or(self.config.retransmit),
            _ => self.config.retransmit,
        };
        sa.requests.start(now, vec![msg.clone()], policy);
        sa.pending = Some(Pending::Work(what));
        self.send(sa.local, sa.remote, &msg);
        Ok(())
    }

    /// Sends a request once, without waiting for or retransmitting it, and consumes its
    /// message ID (a last word on an SA we forget right away).
    fn send_once(&mut self, sa: &mut IkeSa, exchange: ExchangeType, inner: &[Payload<'_>]) {
        if sa.requests.busy() {
            sa.requests.abandon();
        }
        let id = sa.requests.next_id();
        let header = sa.header(exchange, id, false);
        let Some(keys) = &sa.keys else {
            return;
        };
        if let Ok(msg) = keys.seal(&mut *self.rng, header, inner) {
            self.send(sa.local, sa.remote, &msg);
        }
    }

    /// Deletes an IKE SA at once: one INFORMATIONAL with a Delete payload, no wait.
    fn delete_now(&mut self, sa: &mut IkeSa, reason: Option<DownReason>) {
        self.send_once(
            sa,
            ExchangeType::INFORMATIONAL,
            &[Payload::new(PayloadBody::Delete(Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: &[],
            }))],
        );
        if let Some(r) = reason {
            self.ike_down(sa, r);
        }
    }

    /// The IKE SA and its children are gone: events (if the application knows the SA).
    fn ike_down(&mut self, sa: &mut IkeSa, reason: DownReason) {
        let child_reason = match reason {
            DownReason::PeerUnreachable => DownReason::PeerUnreachable,
            _ => DownReason::IkeSaGone,
        };
        self.children_down(sa, child_reason);
        if sa.announced {
            sa.announced = false;
            let name = self
                .peers
                .get(sa.peer)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            self.event(Event::IkeSaDown {
                handle: IkeSaHandle(sa.our_spi()),
                peer: name,
                reason,
            });
        }
    }

    /// A snapshot of every IKE SA and its Child SAs, for operators and tests (no secrets:
    /// keys appear as a short fingerprint).
    pub fn snapshot(&self) -> Vec<IkeSaSnapshot> {
        self.sas
            .values()
            .map(|sa| IkeSaSnapshot {
                handle: IkeSaHandle(sa.our_spi()),
                peer: sa.peer,
                initiator: sa.initiator,
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                state: match (&sa.state, sa.life) {
                    (State::InitSent(_) | State::AuthSent(_), _) => IkeSaState::Connecting,
                    (State::HalfOpen { .. }, _) => IkeSaState::HalfOpen,
                    (State::Established, Life::Rekeyed(_)) => IkeSaState::Rekeyed,
                    (State::Established, _) if sa.deleting() => IkeSaState::Deleting,
                    (State::Established, Life::Rekeying) => IkeSaState::Rekeying,
                    (State::Established, Life::Normal) => IkeSaState::Established,
                },
                announced: sa.announced,
                key_fingerprint: sa.keys.as_ref().map_or_else(Vec::new, |k| {
                    let mut v = k
                        .prf
                        .compute(k.sk_d.expose(), &[b"ferrosec fingerprint"])
                        .expose()
                        .to_vec();
                    v.truncate(8);
                    v
                }),
                request_in_flight: sa.requests.busy(),
                queued: sa.queue.len() + sa.deferred.len(),
                rekey_at: sa.soft,
                expires_at: sa.hard,
                children: sa
                    .children
                    .iter()
                    .map(|c| ChildSaSnapshot {
                        inbound_spi: c.inbound,
                        outbound_spi: c.outbound,
                        policy: c.policy,
                        state: c.state,
                        rekey_at: c.soft,
                        expires_at: c.hard,
                        key_fingerprint: c.fingerprints.0.to_vec(),
                        peer_key_fingerprint: c.fingerprints.1.to_vec(),
                    })
                    .collect(),
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------
    // Timeouts

    /// Handles everything due at `now`: retransmissions, liveness checks, expiry of
    /// half-open SAs, lifetimes (rekey, re-authentication, expiry), cookie secret rotation.
    ///
    /// Only the SAs with a deadline at or before `now` are visited.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.cookies.handle_timeout(now, &mut *self.rng);
        for spi in self.sas.due(now) {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            #[cfg(test)]
            {
                self.timeout_visits += 1;
            }
            if self.sa_timeout(now, &mut sa) == Keep::Yes {
                self.sas.insert(spi, sa);
            } else {
                self.forget(&sa);
            }
        }
    }

    fn forget(&mut self, sa: &IkeSa) {
        self.init_index.remove(&(sa.spi_i, sa.remote));
        let ours = sa.our_spi();
        if let Some(k) = self.init_rev.remove(&ours)
            && self.init_index.get(&k) == Some(&ours)
        {
            self.init_index.remove(&k);
        }
        // Aliases pointing at it (or at nothing any more) go too.
        for from in self.alias_rev.remove(&ours).unwrap_or_default() {
            if self.aliases.get(&from) == Some(&ours) {
                self.aliases.remove(&from);
            }
        }
        // A re-authentication that failed: the old SA may try again at its next deadline.
        if let Some(old) = sa.replaces {
            self.sas.update(&old, |o| o.being_replaced = false);
        }
    }

    /// The next deadline of an SA's lifetimes and deferred work.
    fn sa_deadlines(sa: &IkeSa) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut add = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if !sa.established() {
            return None;
        }
        if let Life::Rekeyed(at) = sa.life {
            add(Some(at));
            return t;
        }
        add(sa.cleanup_at);
        add(sa.hard);
        if sa.life == Life::Normal && !sa.being_replaced {
            add(sa.soft);
        }
        for c in &sa.children {
            add(c.hard);
            if c.state == ChildState::Installed {
                add(c.soft);
            }
            add(c.switch.map(|s| s.by));
        }
        for (at, _) in &sa.deferred {
            add(Some(*at));
        }
        t
    }

    fn sa_timeout(&mut self, now: Instant, sa: &mut IkeSa) -> Keep {
        if let State::HalfOpen { expires, .. } = &sa.state
            && now >= *expires
        {
            return Keep::No;
        }
        if let Life::Rekeyed(at) = sa.life
            && now >= at
        {
            // The rekey initiator never deleted it: forget it quietly (its children moved).
            return Keep::No;
        }
        if sa.cleanup_at.is_some_and(|t| now >= t) {
            // A redundant SA of a collision we won that the peer did not delete (§2.8.2).
            self.delete_now(sa, Some(DownReason::LocalDelete));
            return Keep::No;
        }
        match sa.requests.handle_timeout(now) {
            RequestTimeout::Nothing => {}
            RequestTimeout::Retransmit(datagrams) => {
                for d in datagrams {
                    self.send(sa.local, sa.remote, &d);
                }
            }
            RequestTimeout::GiveUp(_) => {
                let retransmissions = match sa.pending {
                    Some(Pending::Work(Work::Liveness)) => {
                        sa.liveness.policy().map_or(0, |p| p.tries)
                    }
                    _ => self.config.retransmit.tries,
                };
                self.peer_dead(now, sa, retransmissions);
                return Keep::No;
            }
        }
        if sa.established() && !matches!(sa.life, Life::Rekeyed(_)) {
            self.lifetime_timeout(now, sa);
        }
        if sa.established()
            && !matches!(sa.life, Life::Rekeyed(_))
            && !sa.requests.busy()
            && sa.queue.is_empty()
            && sa.liveness.due(now)
        {
            // R-V2-3: nothing received for the interval.
            let _ = self.start_informational(now, sa, Work::Liveness);
        }
        self.pump(now, sa);
        Keep::Yes
    }

    /// Lifetimes (R-V2-10, R-V2-11) and deferred work.
    fn lifetime_timeout(&mut self, now: Instant, sa: &mut IkeSa) {
        // Switches whose proof never came (R-V2-10 fallback), and those of pairs that
        // expire now: traffic leaves an expiring pair first.
        let expiring: Vec<Spi> = sa
            .children
            .iter()
            .filter(|c| c.switch.is_some() && c.hard.is_some_and(|t| now >= t))
            .map(|c| c.inbound)
            .collect();
        for old in expiring {
            self.flush_switch(sa, old);
        }
        self.flush_switches(sa, None, Some(now));
        // Deferred work that is due.
        let mut i = 0;
        while i < sa.deferred.len() {
            if sa.deferred[i].0 <= now {
                let (_, w) = sa.deferred.swap_remove(i);
                sa.push_work(w);
            } else {
                i += 1;
            }
        }
        if sa.hard.is_some_and(|t| now >= t) {
            sa.hard = None;
            sa.soft = None;
            if !sa.deleting() && !sa.queue.contains(&Work::DeleteIke) {
                sa.push_work_front(Work::DeleteIke);
            }
            return;
        }
        if sa.life == Life::Normal && !sa.being_replaced && sa.soft.is_some_and(|t| now >= t) {
            sa.soft = None;
            let m = self.lifetimes_of(sa.peer).reauth_multiple.unwrap_or(0);
            if m > 0 && sa.rekeys_since_auth + 1 >= m {
                let _ = self.start_reauth(now, sa);
            } else if !sa.queue.iter().any(|w| matches!(w, Work::RekeyIke { .. })) {
                sa.push_work(Work::RekeyIke {
                    group: None,
                    tries: 0,
                });
            }
        }
        let handle = IkeSaHandle(sa.our_spi());
        let mut expired = Vec::new();
        let mut rekey = Vec::new();
        for c in &mut sa.children {
            if c.hard.is_some_and(|t| now >= t) {
                c.hard = None;
                c.soft = None;
                expired.push((c.inbound, c.outbound));
            } else if c.state == ChildState::Installed && c.soft.is_some_and(|t| now >= t) {
                c.soft = None;
                rekey.push((c.policy, c.inbound));
            }
        }
        for (inbound, outbound) in expired {
            // The data plane must stop using it now; the delete exchange follows.
            self.event(Event::ChildSaExpired {
                ike_sa: handle,
                inbound_spi: inbound,
                outbound_spi: outbound,
            });
            if sa.pending_delete_of(inbound) {
                continue;
            }
            sa.push_work_front(Work::DeleteChild(inbound));
        }
        for (policy, inbound) in rekey {
            sa.push_work(Work::CreateChild {
                policy,
                rekey: Some(inbound),
                group: None,
                tries: 0,
            });
        }
    }

    /// All retransmissions failed: the SA and its children are gone; maybe start again.
    fn peer_dead(&mut self, now: Instant, sa: &mut IkeSa, retransmissions: u32) {
        let name = self
            .peers
            .get(sa.peer)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        if sa.established() {
            let was_announced = sa.announced;
            self.ike_down(sa, DownReason::PeerUnreachable);
            if !was_announced {
                return;
            }
        } else {
            self.failed(
                Some(sa),
                name,
                false,
                Failure::PeerUnreachable { retransmissions },
            );
        }
        let restart = self
            .peers
            .get(sa.peer)
            .is_some_and(|p| p.restart_on_dead_peer && p.peer_addr.is_some());
        if restart && sa.initiator {
            let local = SocketAddr::new(sa.local.ip(), IKE_PORT);
            let remote = SocketAddr::new(sa.remote.ip(), IKE_PORT);
            let _ = self.initiate(now, sa.peer, local, remote);
        }
    }

    fn children_down(&mut self, sa: &mut IkeSa, reason: DownReason) {
        let handle = IkeSaHandle(sa.our_spi());
        for c in std::mem::take(&mut sa.children) {
            self.event(Event::ChildSaDown {
                ike_sa: handle,
                inbound_spi: c.inbound,
                outbound_spi: c.outbound,
                reason: reason.clone(),
            });
        }
    }

    // -----------------------------------------------------------------------------------
    // Datagrams

    /// Handles a UDP datagram that arrived on `local` from `remote` (port 500 or 4500).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let data = if local.port() == NATT_PORT {
            // RFC 3948 §2: a NAT keepalive is one 0xff byte; IKE has a 4-byte zero marker;
            // anything else is ESP and not ours.
            match data.split_first_chunk::<4>() {
                Some(([0, 0, 0, 0], rest)) => rest,
                _ => return,
            }
        } else {
            data
        };
        let Ok(packet) = Packet::new_checked(data) else {
            return;
        };
        let header = Header::parse(&packet);
        if packet.version().major() != 2 {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.5
            //# If an endpoint receives a message with a higher major version number, it MUST
            //# drop the message and SHOULD send an unauthenticated Notify message of type
            //# INVALID_MAJOR_VERSION containing the highest (closest) version number it
            //# supports.
            if packet.version().major() > 2 && !header.flags.response() {
                self.send_unprotected_error(
                    now,
                    local,
                    remote,
                    &header,
                    NotifyType::INVALID_MAJOR_VERSION,
                    &[0x20],
                );
            }
            return;
        }
        let from_initiator = header.flags.initiator();
        if header.flags.response() {
            // The responder of the exchange is the peer; our SPI is the one of our role.
            let ours = if from_initiator {
                header.responder_spi
            } else {
                header.initiator_spi
            };
            let Some(mut sa) = self.sas.remove(&ours) else {
                return;
            };
            // The message must come from the peer in the role it claims.
            if sa.initiator == from_initiator {
                self.sas.insert(ours, sa);
                return;
            }
            let keep = self.handle_response(now, &mut sa, local, remote, &header, data);
            if keep == Keep::Yes {
                self.pump(now, &mut sa);
            }
            self.reinsert(ours, sa, keep);
        } else if header.exchange_type == ExchangeType::IKE_SA_INIT
            && header.responder_spi.0 == 0
            && header.message_id.0 == 0
        {
            if from_initiator {
                self.handle_init_request(now, local, remote, &header, data);
            }
        } else {
            let ours = if from_initiator {
                header.responder_spi
            } else {
                header.initiator_spi
            };
            let Some(mut sa) = self.sas.remove(&ours) else {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.4
                //# If a response is sent, the response MUST be sent to the IP address and
                //# port from which it came with the same IKE SPIs and the Message ID
                //# copied.  The response MUST NOT be cryptographically protected and MUST
                //# contain an INVALID_IKE_SPI Notify payload.
                self.send_unprotected_error(
                    now,
                    local,
                    remote,
                    &header,
                    NotifyType::INVALID_IKE_SPI,
                    &[],
                );
                return;
            };
            if sa.initiator == from_initiator {
                self.sas.insert(ours, sa);
                return;
            }
            let keep = self.handle_request(now, &mut sa, local, remote, &header, data);
            if keep == Keep::Yes {
                self.pump(now, &mut sa);
            }
            self.reinsert(ours, sa, keep);
        }
    }

    fn reinsert(&mut self, spi: IkeSpi, sa: Box<IkeSa>, keep: Keep) {
        match keep {
            Keep::Yes => {
                self.sas.insert(spi, sa);
            }
            Keep::No => self.forget(&sa),
        }
    }

    fn peer_for(&self, remote: SocketAddr) -> Option<usize> {
        self.peers
            .iter()
            .position(|p| p.peer_addr == Some(remote.ip()))
            .or_else(|| self.peers.iter().position(|p| p.peer_addr.is_none()))
    }

    /// An unprotected response carrying one error notify, for a request outside any IKE SA
    /// we know (INVALID_IKE_SPI, INVALID_MAJOR_VERSION), rate-limited so that it cannot be
    /// used for reflection.
    fn send_unprotected_error(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        req: &Header,
        ty: NotifyType,
        data: &[u8],
    ) {
        let (start, count) = &mut self.error_notifies;
        if start
            .is_none_or(|t| now.saturating_duration_since(t) >= std::time::Duration::from_secs(1))
        {
            *start = Some(now);
            *count = 0;
        }
        if *count >= MAX_ERROR_NOTIFIES_PER_SEC {
            return;
        }
        *count += 1;
        // We answer as the responder of the exchange the peer started.
        let msg = Message {
            header: Header {
                version: Version::IKEV2,
                flags: Flags::new(!req.flags.initiator(), true),
                ..*req
            },
            payloads: vec![Payload::new(PayloadBody::Notify(Notify::new(ty, data)))],
        };
        if let Ok(bytes) = msg.to_vec() {
            self.send(local, remote, &bytes);
        }
    }

    /// An unencrypted IKE_SA_INIT response that carries only a notify.
    fn send_init_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        req: &Header,
        ty: NotifyType,
        data: &[u8],
    ) {
        let msg = Message {
            header: Header {
                responder_spi: IkeSpi(0),
                flags: Flags::new(false, true),
                ..*req
            },
            payloads: vec![Payload::new(PayloadBody::Notify(Notify::new(ty, data)))],
        };
        if let Ok(bytes) = msg.to_vec() {
            self.send(local, remote, &bytes);
        }
    }

    // -----------------------------------------------------------------------------------
    // IKE_SA_INIT

    fn init_request(&self, sa: &IkeSa) -> Result<Vec<u8>, ferrosec_wire::Error> {
        let State::InitSent(st) = &sa.state else {
            return Err(ferrosec_wire::Error::Malformed("not in IKE_SA_INIT"));
        };
        let cfg = &self.peers[sa.peer];
        let mut payloads = Vec::new();
        if let Some(c) = &st.cookie {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.6
            //# the initiator MUST retry the IKE_SA_INIT request, and include the
            //# Notify payload of type COOKIE containing the responder-supplied cookie
            //# data as the first payload
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::COOKIE,
                c,
            ))));
        }
        payloads.push(Payload::new(PayloadBody::Sa(proposals_to_wire(
            &cfg.ike_proposals,
        ))));
        payloads.push(Payload::new(PayloadBody::Ke(KeyExchange {
            group: DhGroup(st.kex.group()),
            data: st.kex.public_key(),
        })));
        payloads.push(Payload::new(PayloadBody::Nonce(&st.ni)));
        let src = nat_hash(sa.spi_i, IkeSpi(0), sa.local);
        let dst = nat_hash(sa.spi_i, IkeSpi(0), sa.remote);
        if cfg.nat_traversal {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                &src,
            ))));
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                &dst,
            ))));
        }
        Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, MessageId(0), false),
            payloads,
        }
        .to_vec()
    }

    fn handle_init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) {
        // A retransmission of a request we answered: the same answer again.
        if let Some(ours) = self.init_index.get(&(header.initiator_spi, remote)) {
            if let Some(sa) = self.sas.get(ours)
                && let RequestClass::Retransmit(d) = sa.responses.classify(MessageId(0))
            {
                let d = d.to_vec();
                let (l, r) = (sa.local, sa.remote);
                for m in d {
                    self.send(l, r, &m);
                }
            }
            return;
        }
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        let mut sa_p = None;
        let mut ke = None;
        let mut nonce = None;
        for p in &msg.payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa_p = Some(s),
                PayloadBody::Ke(k) => ke = Some(*k),
                PayloadBody::Nonce(n) => nonce = Some(*n),
                _ => {}
            }
        }
        let (Some(sa_p), Some(ke), Some(nonce)) = (sa_p, ke, nonce) else {
            self.send_init_notify(local, remote, header, NotifyType::INVALID_SYNTAX, &[]);
            return;
        };
        if !(16..=256).contains(&nonce.len()) {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-3.9
            //# The size of the Nonce Data MUST be between 16 and 256 octets, inclusive.
            self.send_init_notify(local, remote, header, NotifyType::INVALID_SYNTAX, &[]);
            return;
        }
        if unsupported_critical(&msg.payloads) {
            self.send_init_notify(
                local,
                remote,
                header,
                NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
                &[],
            );
            return;
        }
        let Some(peer) = self.peer_for(remote) else {
            self.failed(
                None,
                remote.to_string(),
                false,
                Failure::NoPeerConfig(remote),
            );
            return;
        };
        // Cookies: decided before any state or DH work (§2.6).
        let cookie = find_notify(&msg.payloads, NotifyType::COOKIE)
            .map(|n| n.data)
            .filter(|c| !c.is_empty() && c.len() <= MAX_COOKIE_LEN);
        let input = CookieInput {
            nonce,
            addr: remote.ip(),
            spi_i: header.initiator_spi,
        };
        match self.cookies.decide(self.half_open_count(), &input, cookie) {
            CookieDecision::Proceed => {}
            CookieDecision::Drop => return,
            CookieDecision::SendCookie(c) => {
                self.send_init_notify(local, remote, header, NotifyType::COOKIE, &c);
                return;
            }
        }
        let cfg = &self.peers[peer];
        let name = cfg.name.clone();
        let selected = match proposal::select(
            &offered_proposals(sa_p),
            &cfg.ike_proposals,
            SelectOptions::default(),
        ) {
            Ok(s) => s,
            Err(e) => {
                self.send_init_notify(local, remote, header, NotifyType::NO_PROPOSAL_CHOSEN, &[]);
                self.failed(None, name, false, Failure::NoProposalChosen(e));
                return;
            }
        };
        let Some(group) = selected.ke else {
            return;
        };
        if ke.group != group {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-1.2
            //# If the guess turns out to be wrong, the responder will indicate the group it
            //# wants with an INVALID_KE_PAYLOAD notification
            self.send_init_notify(
                local,
                remote,
                header,
                NotifyType::INVALID_KE_PAYLOAD,
                &group.0.to_be_bytes(),
            );
            return;
        }
        let kx = match self
            .provider
            .key_exchange(group.0)
            .and_then(|k| k.respond(&mut *self.rng, ke.data))
        {
            Ok(kx) => kx,
            Err(_) => {
                self.send_init_notify(local, remote, header, NotifyType::INVALID_SYNTAX, &[]);
                return;
            }
        };
        let spi_i = header.initiator_spi;
        let spi_r = self.new_ike_spi();
        let nr = self.random_bytes(NONCE_LEN);
        let keys = match IkeKeys::derive(
            &self.provider,
            &selected,
            &kx.shared,
            nonce,
            &nr,
            spi_i,
            spi_r,
            false,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.send_init_notify(local, remote, header, NotifyType::NO_PROPOSAL_CHOSEN, &[]);
                self.failed(None, name, false, Failure::Crypto(e.to_string()));
                return;
            }
        };
        let nat_t = self.peers[peer].nat_traversal;
        let nat = if nat_t {
            nat_detect(&msg.payloads, spi_i, IkeSpi(0), local, remote).unwrap_or((false, false))
        } else {
            (false, false)
        };
        // The response.
        let answer = selected.to_proposal(Vec::new());
        let src = nat_hash(spi_i, spi_r, local);
        let dst = nat_hash(spi_i, spi_r, remote);
        let mut payloads = vec![
            Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![answer.to_wire(selected.number)],
            })),
            Payload::new(PayloadBody::Ke(KeyExchange {
                group,
                data: &kx.public,
            })),
            Payload::new(PayloadBody::Nonce(&nr)),
        ];
        let peer_sent_nat_d =
            find_notify(&msg.payloads, NotifyType::NAT_DETECTION_SOURCE_IP).is_some();
        if nat_t && peer_sent_nat_d {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                &src,
            ))));
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                &dst,
            ))));
        }
        let resp = Message {
            header: Header {
                initiator_spi: spi_i,
                responder_spi: spi_r,
                version: Version::IKEV2,
                exchange_type: ExchangeType::IKE_SA_INIT,
                flags: Flags::new(false, true),
                message_id: MessageId(0),
            },
            payloads,
        };
        let Ok(resp) = resp.to_vec() else {
            return;
        };
        let mut responses = Responses::new(MessageId(0));
        responses.record(MessageId(0), vec![resp.clone()]);
        let sa_nonce = min_nonce(nonce, &nr);
        let sa = IkeSa {
            peer,
            initiator: false,
            spi_i,
            spi_r,
            local,
            remote,
            state: State::HalfOpen {
                transcript: Box::new(InitTranscript {
                    msg1: data.to_vec(),
                    msg2: resp.clone(),
                    ni: nonce.to_vec(),
                    nr,
                }),
                expires: now + self.config.half_open_timeout,
            },
            requests: Requests::new(MessageId(0)),
            responses,
            liveness: Liveness::new(self.peers[peer].liveness, now),
            pending: None,
            queue: VecDeque::new(),
            keys: Some(keys),
            proposal: Some(selected),
            nat,
            children: Vec::new(),
            life: Life::Normal,
            peer_id: None,
            announced: false,
            nonce: sa_nonce,
            created: now,
            established_at: None,
            soft: None,
            hard: None,
            rekeys_since_auth: 0,
            replaces: None,
            being_replaced: false,
            deferred: Vec::new(),
            cleanup_at: None,
        };
        self.send(local, remote, &resp);
        self.init_index.insert((spi_i, remote), spi_r);
        self.init_rev.insert(spi_r, (spi_i, remote));
        self.sas.insert(spi_r, sa);
    }

    fn handle_init_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Keep {
        let Ok(msg) = Message::parse(data) else {
            return Keep::Yes;
        };
        let name = self.peers[sa.peer].name.clone();
        let State::InitSent(st) = &mut sa.state else {
            return Keep::Yes;
        };
        // COOKIE: send the request again with it (same SPI, nonce, KE).
        if let Some(c) = find_notify(&msg.payloads, NotifyType::COOKIE) {
            if c.data.is_empty() || c.data.len() > MAX_COOKIE_LEN || st.rounds >= MAX_INIT_ROUNDS {
                return Keep::Yes;
            }
            st.cookie = Some(c.data.to_vec());
            st.rounds += 1;
            return self.restart_init(now, sa);
        }
        if let Some(n) = find_notify(&msg.payloads, NotifyType::INVALID_KE_PAYLOAD) {
            let wanted = n
                .data
                .get(..2)
                .map(|b| DhGroup(u16::from_be_bytes([b[0], b[1]])));
            let ours = self.peers[sa.peer].ike_proposals.iter().any(|p| {
                p.of_type(TransformType::KE)
                    .any(|t| Some(DhGroup(t.id)) == wanted)
            });
            match wanted {
                Some(g) if ours && g.0 != st.kex.group() && st.rounds < MAX_INIT_ROUNDS => {
                    let Ok(kex) = self
                        .provider
                        .key_exchange(g.0)
                        .and_then(|k| k.start(&mut *self.rng))
                    else {
                        return Keep::Yes;
                    };
                    st.kex = kex;
                    st.rounds += 1;
                    // §1.2: the retry is a new exchange: a new nonce is fine, keep ours.
                    return self.restart_init(now, sa);
                }
                _ => {
                    self.failed(
                        Some(sa),
                        name,
                        false,
                        Failure::PeerRefused {
                            notify: NotifyType::INVALID_KE_PAYLOAD,
                        },
                    );
                    return Keep::No;
                }
            }
        }
        if let Some(err) = first_error_notify(&msg.payloads) {
            // TODO: §2.21.1 says an unauthenticated error may be a forgery; we give up at
            // once, strongSwan does too.
            self.failed(Some(sa), name, false, Failure::PeerRefused { notify: err });
            return Keep::No;
        }
        if header.responder_spi.0 == 0 {
            return Keep::Yes;
        }
        let mut sa_p = None;
        let mut ke = None;
        let mut nonce = None;
        for p in &msg.payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa_p = Some(s),
                PayloadBody::Ke(k) => ke = Some(*k),
                PayloadBody::Nonce(n) => nonce = Some(*n),
                _ => {}
            }
        }
        let (Some(sa_p), Some(ke), Some(nonce)) = (sa_p, ke, nonce) else {
            return Keep::Yes;
        };
        if !(16..=256).contains(&nonce.len()) || sa_p.proposals.len() != 1 {
            return Keep::Yes;
        }
        let cfg = &self.peers[sa.peer];
        let answer = Proposal::from_wire(&sa_p.proposals[0]);
        let selected = match proposal::check_answer(
            &cfg.ike_proposals,
            sa_p.proposals[0].number,
            &answer,
            SelectOptions::default(),
        ) {
            Ok(s) => s,
            Err(e) => {
                self.failed(Some(sa), name, false, Failure::BadAnswer(e));
                return Keep::No;
            }
        };
        if selected.ke.map(|g| g.0) != Some(st.kex.group()) || ke.group.0 != st.kex.group() {
            self.failed(
                Some(sa),
                name,
                false,
                Failure::Protocol("responder's KE group differs from the negotiated one".into()),
            );
            return Keep::No;
        }
        let g_ir = match st.kex.complete(ke.data) {
            Ok(s) => s,
            Err(e) => {
                self.failed(Some(sa), name, false, Failure::Crypto(e.to_string()));
                return Keep::No;
            }
        };
        let spi_r = header.responder_spi;
        let keys = match IkeKeys::derive(
            &self.provider,
            &selected,
            &g_ir,
            &st.ni,
            nonce,
            sa.spi_i,
            spi_r,
            true,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.failed(Some(sa), name, false, Failure::Crypto(e.to_string()));
                return Keep::No;
            }
        };
        let nonce_min = min_nonce(&st.ni, nonce);
        if !sa.requests.handle_response(MessageId(0)) {
            return Keep::Yes;
        }
        sa.nonce = nonce_min;
        let nat_t = cfg.nat_traversal;
        sa.spi_r = spi_r;
        sa.keys = Some(keys);
        sa.proposal = Some(selected);
        if nat_t && let Some(nat) = nat_detect(&msg.payloads, sa.spi_i, spi_r, local, remote) {
            sa.nat = nat;
            if nat.0 || nat.1 {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.23
                //# the initiator MUST switch to using UDP port 4500 for the IKE_AUTH
                sa.local = SocketAddr::new(sa.local.ip(), NATT_PORT);
                sa.remote = SocketAddr::new(sa.remote.ip(), NATT_PORT);
            }
        }
        let State::InitSent(st) = std::mem::replace(&mut sa.state, State::Established) else {
            return Keep::No;
        };
        let transcript = InitTranscript {
            msg1: st.sent,
            msg2: data.to_vec(),
            ni: st.ni,
            nr: nonce.to_vec(),
        };
        self.send_auth_request(now, sa, transcript)
    }

    fn restart_init(&mut self, now: Instant, sa: &mut IkeSa) -> Keep {
        match self.init_request(sa) {
            Ok(m) => {
                if let State::InitSent(st) = &mut sa.state {
                    st.sent = m.clone();
                }
                sa.requests.restart(now, vec![m.clone()]);
                self.send(sa.local, sa.remote, &m);
                Keep::Yes
            }
            Err(_) => Keep::No,
        }
    }

    // -----------------------------------------------------------------------------------
    // IKE_AUTH

    fn local_id(&self, sa: &IkeSa) -> Identity {
        self.peers[sa.peer]
            .local_id
            .clone()
            .unwrap_or_else(|| Identity::addr(sa.local.ip()))
    }

    /// AUTH for shared keys (§2.15): prf(prf(PSK, "Key Pad for IKEv2"), <SignedOctets>),
    /// SignedOctets = RealMessage | Nonce(peer) | prf(SK_p, ID').
    fn signed_octets_mac(keys: &IkeKeys, initiator_side: bool, id: &Identity) -> Secret {
        let sk_p = if initiator_side {
            keys.sk_pi()
        } else {
            keys.sk_pr()
        };
        keys.prf.compute(sk_p, &[&id.payload_body()])
    }

    fn send_auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        transcript: InitTranscript,
    ) -> Keep {
        let cfg = &self.peers[sa.peer];
        let Some(policy) = cfg.policies.first().cloned() else {
            return Keep::No;
        };
        // R-DP-2: AH cannot cross a NAT (its ICV covers the addresses the NAT rewrites), so
        // with one detected only ESP is offered; with nothing left, the IKE SA is given up
        // with that reason rather than refused by the peer in less telling words.
        let nat = sa.nat.0 || sa.nat.1;
        let child_props: Vec<Proposal> = strip_ke(&cfg.child_proposals)
            .into_iter()
            .filter(|p| !(nat && p.protocol == ProtocolId::AH))
            .collect();
        if child_props.is_empty() && !cfg.child_proposals.is_empty() {
            let name = cfg.name.clone();
            self.failed(Some(sa), name, false, Failure::AhWithNat);
            return Keep::No;
        }
        let psk = cfg.psk.clone();
        let id = self.local_id(sa);
        let child_spi = self.new_child_spi();
        let first_contact = !self.sas.has_peer(sa.peer);
        let Some(keys) = &sa.keys else {
            return Keep::No;
        };
        let mac = Self::signed_octets_mac(keys, true, &id);
        let auth = psk_auth(
            keys.prf,
            &psk,
            &[&transcript.msg1, &transcript.nr, mac.expose()],
        );
        let (tsi, tsr) = policy.initiator_offer();
        let props = with_spi(&child_props, child_spi);
        let tsi_w = tsi.to_wire();
        let tsr_w = tsr.to_wire();
        let mut inner = vec![Payload::new(PayloadBody::IdI(Identification {
            id_type: id.ty,
            data: &id.data,
        }))];
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.4
        //# ... the INITIAL_CONTACT notification ... asserts that this IKE SA is the only
        //# IKE SA currently active between the authenticated identities.
        // Sent only when we have no other IKE SA with this peer in any state (a crossing
        // IKE_SA_INIT or a re-authentication is not a first contact).
        if first_contact {
            inner.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::INITIAL_CONTACT,
                &[],
            ))));
        }
        inner.extend([
            Payload::new(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: auth.expose(),
            })),
            Payload::new(PayloadBody::Sa(proposals_to_wire(&props))),
            Payload::new(PayloadBody::TsI(tsi_w)),
            Payload::new(PayloadBody::TsR(tsr_w)),
        ]);
        let id_msg = sa.requests.next_id();
        let header = sa.header(ExchangeType::IKE_AUTH, id_msg, false);
        let Ok(msg) = keys.seal(&mut *self.rng, header, &inner) else {
            return Keep::No;
        };
        sa.requests
            .start(now, vec![msg.clone()], self.config.retransmit);
        sa.state = State::AuthSent(Box::new(AuthSent {
            transcript,
            child_spi,
            policy: 0,
            offer: Narrowed { tsi, tsr },
        }));
        self.send(sa.local, sa.remote, &msg);
        Keep::Yes
    }

    fn info(&self, sa: &IkeSa, peer_id: Identity) -> IkeSaInfo {
        IkeSaInfo {
            handle: IkeSaHandle(sa.our_spi()),
            peer: self.peers[sa.peer].name.clone(),
            initiator: sa.initiator,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            proposal: sa.proposal.clone().unwrap_or(Selected {
                number: 0,
                protocol: ProtocolId::IKE,
                spi: Vec::new(),
                encr: None,
                prf: None,
                integ: None,
                ke: None,
                esn: None,
            }),
            local: sa.local,
            remote: sa.remote,
            peer_id,
            nat: sa.nat,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn child_info(
        &self,
        sa: &IkeSa,
        policy: &str,
        sel: &Selected,
        inbound: Spi,
        outbound: Spi,
        ni: &[u8],
        nr: &[u8],
        g_ir: Option<&Secret>,
        tsi: TsSet,
        tsr: TsSet,
        exchange_initiator: bool,
    ) -> Result<ChildSaInfo, Failure> {
        // R-DP-2 (RFC 3948 §2: UDP encapsulation is for ESP only).
        if sel.protocol == ProtocolId::AH && (sa.nat.0 || sa.nat.1) {
            return Err(Failure::AhWithNat);
        }
        let keys = sa
            .keys
            .as_ref()
            .ok_or_else(|| Failure::Protocol("no IKE keys".into()))?;
        let (encr_len, integ_len) = match sel.encr {
            Some((e, k)) => {
                let suite = self
                    .provider
                    .esp(e.0, k, sel.integ.map(|i| i.0))
                    .map_err(|e| Failure::Crypto(e.to_string()))?;
                (suite.encr_keymat_len(), suite.integ_key_len())
            }
            None => {
                let i = sel
                    .integ
                    .ok_or_else(|| Failure::Protocol("AH without integrity".into()))?;
                let alg = self
                    .provider
                    .integrity(i.0)
                    .map_err(|e| Failure::Crypto(e.to_string()))?;
                (0, alg.key_len())
            }
        };
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.17
        //# KEYMAT = prf+(SK_d, Ni | Nr)
        let g = g_ir.map(Secret::expose);
        let k = ChildSaKeys::derive(keys.prf, &keys.sk_d, g, ni, nr, encr_len, integ_len)
            .map_err(|e| Failure::Crypto(e.to_string()))?;
        let i_keys = ChildKeys {
            encr: k.encr_i,
            integ: k.integ_i,
        };
        let r_keys = ChildKeys {
            encr: k.encr_r,
            integ: k.integ_r,
        };
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.17
        //# All keys for SAs carrying data from the initiator to the responder are taken before
        //# SAs going from the responder to the initiator.
        // "Initiator" is the initiator of the exchange that creates the Child SA (as are Ni, Nr,
        // TSi and TSr), not of the IKE SA: a CREATE_CHILD_SA may come from either side.
        let (inbound_keys, outbound_keys, local_ts, remote_ts) = if exchange_initiator {
            (r_keys, i_keys, tsi, tsr)
        } else {
            (i_keys, r_keys, tsr, tsi)
        };
        Ok(ChildSaInfo {
            ike_sa: IkeSaHandle(sa.our_spi()),
            policy: policy.to_owned(),
            protocol: sel.protocol,
            inbound_spi: inbound,
            outbound_spi: outbound,
            encr: sel.encr,
            integ: sel.integ,
            esn: sel.esn == Some(ferrosec_wire::ikev2::EsnId::ESN),
            inbound: inbound_keys,
            outbound: outbound_keys,
            local_ts,
            remote_ts,
            local: sa.local,
            remote: sa.remote,
            udp_encap: sa.nat.0 || sa.nat.1,
        })
    }

    /// Responder: IKE_AUTH request on a half-open SA.
    fn handle_auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        let State::HalfOpen { transcript, .. } = &sa.state else {
            return Keep::Yes;
        };
        let cfg = self.peers[sa.peer].clone();
        let mut idi = None;
        let mut auth = None;
        let mut child_sa = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in inner {
            match &p.body {
                PayloadBody::IdI(i) => idi = Some(*i),
                PayloadBody::Auth(a) => auth = Some(*a),
                PayloadBody::Sa(s) => child_sa = Some(s),
                PayloadBody::TsI(t) => tsi = Some(TsSet::from_wire(t)),
                PayloadBody::TsR(t) => tsr = Some(TsSet::from_wire(t)),
                _ => {}
            }
        }
        let fail = |this: &mut Self, sa: &mut IkeSa, reason: Failure| {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.2
            //# If the error occurs on the responder, the notification is returned in the
            //# protected response, and is usually the only payload in that response.
            this.respond(
                sa,
                header,
                &[Payload::new(PayloadBody::Notify(Notify::new(
                    NotifyType::AUTHENTICATION_FAILED,
                    &[],
                )))],
            );
            this.failed(Some(sa), cfg.name.clone(), false, reason);
            Keep::No
        };
        let (Some(idi), Some(auth)) = (idi, auth) else {
            return fail(
                self,
                sa,
                Failure::Protocol("IKE_AUTH without IDi or AUTH".into()),
            );
        };
        let peer_id = Identity {
            ty: idi.id_type,
            data: idi.data.to_vec(),
        };
        if let Some(expected) = &cfg.peer_id
            && *expected != peer_id
        {
            return fail(
                self,
                sa,
                Failure::IdMismatch {
                    presented: peer_id,
                    expected: expected.clone(),
                },
            );
        }
        let Some(keys) = &sa.keys else {
            return Keep::No;
        };
        let mac = Self::signed_octets_mac(keys, true, &peer_id);
        let ok = auth.method == AuthMethod::SHARED_KEY_MIC
            && verify_psk_auth(
                keys.prf,
                &cfg.psk,
                &[&transcript.msg1, &transcript.nr, mac.expose()],
                auth.data,
            )
            .is_ok();
        if !ok {
            return fail(self, sa, Failure::AuthFailed);
        }
        // Authenticated. Our AUTH: msg2 | Ni | prf(SK_pr, IDr').
        let id = self.local_id(sa);
        let mac = Self::signed_octets_mac(keys, false, &id);
        let our_auth = psk_auth(
            keys.prf,
            &cfg.psk,
            &[&transcript.msg2, &transcript.ni, mac.expose()],
        );
        let (ni, nr) = (transcript.ni.clone(), transcript.nr.clone());
        // The first Child SA.
        let mut child_err: Option<(NotifyType, Failure)> = None;
        let mut child: Option<(Selected, usize, Narrowed)> = None;
        if let (Some(csa), Some(tsi), Some(tsr)) = (child_sa, tsi, tsr) {
            {
                let ours = strip_ke(&cfg.child_proposals);
                match proposal::select(
                    &offered_proposals(csa),
                    &ours,
                    SelectOptions { ignore_ke: true },
                ) {
                    Err(e) => {
                        child_err =
                            Some((NotifyType::NO_PROPOSAL_CHOSEN, Failure::NoProposalChosen(e)))
                    }
                    Ok(sel) => match ts::select_policy(&tsi, &tsr, &cfg.policies) {
                        Err(e) => {
                            child_err =
                                Some((NotifyType::TS_UNACCEPTABLE, Failure::TsUnacceptable(e)))
                        }
                        Ok((idx, n)) => child = Some((sel, idx, n)),
                    },
                }
            }
        }
        // Otherwise childless (RFC 6023) or malformed: no Child SA.
        let our_spi = self.new_child_spi();
        let mut info = None;
        if let Some((sel, idx, n)) = &child {
            let outbound = sel
                .spi
                .as_slice()
                .try_into()
                .ok()
                .map(|b: [u8; 4]| Spi(u32::from_be_bytes(b)));
            match outbound {
                Some(out) => match self.child_info(
                    sa,
                    &cfg.policies[*idx].name,
                    sel,
                    our_spi,
                    out,
                    &ni,
                    &nr,
                    None,
                    n.tsi.clone(),
                    n.tsr.clone(),
                    false, // IKE_AUTH: we answer
                ) {
                    Ok(i) => info = Some(i),
                    Err(f) => child_err = Some((NotifyType::NO_PROPOSAL_CHOSEN, f)),
                },
                None => {
                    child_err = Some((
                        NotifyType::INVALID_SYNTAX,
                        Failure::Protocol("Child SA proposal without a 4-byte SPI".into()),
                    ))
                }
            }
        }
        let answer = child
            .as_ref()
            .map(|(sel, _, _)| sel.to_proposal(our_spi.0.to_be_bytes().to_vec()));
        let tsi_w = child.as_ref().map(|(_, _, n)| n.tsi.to_wire());
        let tsr_w = child.as_ref().map(|(_, _, n)| n.tsr.to_wire());
        let mut out = vec![
            Payload::new(PayloadBody::IdR(Identification {
                id_type: id.ty,
                data: &id.data,
            })),
            Payload::new(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: our_auth.expose(),
            })),
        ];
        if let Some((ty, _)) = &child_err {
            out.push(Payload::new(PayloadBody::Notify(Notify::new(*ty, &[]))));
        } else if let (Some(a), Some(ti), Some(tr), Some((sel, _, _))) =
            (&answer, tsi_w, tsr_w, &child)
        {
            out.push(Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![a.to_wire(sel.number)],
            })));
            out.push(Payload::new(PayloadBody::TsI(ti)));
            out.push(Payload::new(PayloadBody::TsR(tr)));
        }
        self.respond(sa, header, &out);
        sa.state = State::Established;
        sa.liveness = Liveness::new(cfg.liveness, now);
        let ic = find_notify(inner, NotifyType::INITIAL_CONTACT).is_some();
        self.on_established(now, sa, peer_id, ic);
        if let Some((_, f)) = child_err {
            self.failed(Some(sa), cfg.name.clone(), true, f);
        } else if let Some(i) = info {
            let policy = child.as_ref().map_or(0, |c| c.1);
            self.add_child(now, sa, i, policy);
        }
        Keep::Yes
    }

    /// Sets the IKE SA's lifetimes (from `now`).
    fn set_ike_lifetimes(&mut self, now: Instant, sa: &mut IkeSa) {
        let l = self.lifetimes_of(sa.peer);
        let (soft, hard) = self.deadlines(now, l.ike);
        sa.soft = soft;
        sa.hard = hard;
    }

    /// An IKE SA is authenticated (either role): announce it, handle INITIAL_CONTACT and
    /// duplicates of a crossing IKE_SA_INIT.
    fn on_established(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        peer_id: Identity,
        initial_contact: bool,
    ) {
        sa.peer_id = Some(peer_id.clone());
        sa.announced = true;
        sa.established_at = Some(now);
        self.set_ike_lifetimes(now, sa);
        let up = self.info(sa, peer_id.clone());
        self.event(Event::IkeSaUp(up));
        if initial_contact {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.4
            //# the receiving node may then delete any other SAs it has to the same
            //# authenticated identity without waiting for a timeout.
            let stale: Vec<IkeSpi> = self
                .sas
                .with_identity(sa.peer, &peer_id)
                .into_iter()
                .filter(|k| self.sas.get(k).is_some_and(|o| o.established()))
                .collect();
            for k in stale {
                if let Some(mut o) = self.sas.remove(&k) {
                    self.delete_now(&mut o, Some(DownReason::PeerDelete));
                    self.forget(&o);
                }
            }
        }
        // A crossing IKE_SA_INIT (both sides initiated at once) leaves two IKE SAs whose
        // negotiations overlapped. As for rekey collisions (§2.8.1), the one whose creating
        // exchange has the lowest nonce is redundant and its initiator deletes it; both
        // ends see the same nonces, so they agree on which one survives.
        // Only SAs with the same authenticated peer can be such duplicates (an indexed lookup,
        // not a walk over every SA).
        let dups: Vec<IkeSpi> = self
            .sas
            .with_identity(sa.peer, &peer_id)
            .into_iter()
            .filter_map(|k| self.sas.get(&k).map(|o| (k, o)))
            .filter(|(_, o)| {
                o.peer == sa.peer
                    && o.announced
                    && o.usable()
                    && o.replaces.is_none()
                    && sa.replaces.is_none()
                    && !o.being_replaced
                    && !sa.being_replaced
                    && o.created < now
                    && o.established_at.is_some_and(|t| sa.created < t)
            })
            .map(|(k, _)| k)
            .collect();
        for k in dups {
            let Some(mut o) = self.sas.remove(&k) else {
                continue;
            };
            if o.nonce < sa.nonce {
                if o.initiator {
                    o.push_work_front(Work::DeleteIke);
                    self.pump(now, &mut o);
                }
            } else if sa.initiator && !sa.queue.contains(&Work::DeleteIke) {
                sa.push_work_front(Work::DeleteIke);
            }
            self.sas.insert(k, o);
        }
    }

    /// Records a new Child SA (either role) with its lifetimes and tells the data plane.
    fn add_child(&mut self, now: Instant, sa: &mut IkeSa, info: ChildSaInfo, policy: usize) {
        let l = self.lifetimes_of(sa.peer);
        let (soft, hard) = self.deadlines(now, l.child);
        sa.push_child(ChildRecord {
            inbound: info.inbound_spi,
            outbound: info.outbound_spi,
            protocol: info.protocol,
            policy,
            state: ChildState::Installed,
            soft,
            hard,
            fingerprints: (
                key_fingerprint(&info.inbound, &info.outbound),
                key_fingerprint(&info.outbound, &info.inbound),
            ),
            switch: None,
        });
        self.event(Event::ChildSaUp(info));
    }

    /// Initiator: IKE_AUTH response.
    fn handle_auth_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload<'_>],
    ) -> Keep {
        let cfg = self.peers[sa.peer].clone();
        let State::AuthSent(st) = std::mem::replace(&mut sa.state, State::Established) else {
            return Keep::No;
        };
        let mut idr = None;
        let mut auth = None;
        let mut child_sa = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in inner {
            match &p.body {
                PayloadBody::IdR(i) => idr = Some(*i),
                PayloadBody::Auth(a) => auth = Some(*a),
                PayloadBody::Sa(s) => child_sa = Some(s),
                PayloadBody::TsI(t) => tsi = Some(TsSet::from_wire(t)),
                PayloadBody::TsR(t) => tsr = Some(TsSet::from_wire(t)),
                _ => {}
            }
        }
        let (Some(idr), Some(auth)) = (idr, auth) else {
            let notify = first_error_notify(inner).unwrap_or(NotifyType::INVALID_SYNTAX);
            self.failed(Some(sa), cfg.name, false, Failure::PeerRefused { notify });
            return Keep::No;
        };
        let peer_id = Identity {
            ty: idr.id_type,
            data: idr.data.to_vec(),
        };
        if let Some(expected) = &cfg.peer_id
            && *expected != peer_id
        {
            self.tell_auth_failed(sa);
            self.failed(
                Some(sa),
                cfg.name,
                false,
                Failure::IdMismatch {
                    presented: peer_id,
                    expected: expected.clone(),
                },
            );
            return Keep::No;
        }
        let Some(keys) = &sa.keys else {
            return Keep::No;
        };
        let mac = Self::signed_octets_mac(keys, false, &peer_id);
        let ok = auth.method == AuthMethod::SHARED_KEY_MIC
            && verify_psk_auth(
                keys.prf,
                &cfg.psk,
                &[&st.transcript.msg2, &st.transcript.ni, mac.expose()],
                auth.data,
            )
            .is_ok();
        if !ok {
            self.tell_auth_failed(sa);
            self.failed(Some(sa), cfg.name, false, Failure::AuthFailed);
            return Keep::No;
        }
        self.on_established(now, sa, peer_id, false);
        // The Child SA.
        if let Some(n) = first_error_notify(inner) {
            self.failed(Some(sa), cfg.name, true, Failure::PeerRefused { notify: n });
            return Keep::Yes;
        }
        let (Some(csa), Some(tsi), Some(tsr)) = (child_sa, tsi, tsr) else {
            self.failed(
                Some(sa),
                cfg.name,
                true,
                Failure::Protocol("IKE_AUTH response without a Child SA".into()),
            );
            return Keep::Yes;
        };
        let rejected_proto = csa
            .proposals
            .first()
            .map_or(ProtocolId::ESP, |p| p.protocol);
        let child_props = with_spi(&strip_ke(&cfg.child_proposals), st.child_spi);
        let (Some(wire_answer), 1) = (csa.proposals.first(), csa.proposals.len()) else {
            self.failed(
                Some(sa),
                cfg.name,
                true,
                Failure::Protocol("Child SA answer must have one proposal".into()),
            );
            // The peer installed what it answered: have it deleted there.
            sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
            return Keep::Yes;
        };
        let answer = Proposal::from_wire(wire_answer);
        let sel = match proposal::check_answer(
            &child_props,
            wire_answer.number,
            &answer,
            SelectOptions { ignore_ke: true },
        ) {
            Ok(s) => s,
            Err(e) => {
                self.failed(Some(sa), cfg.name, true, Failure::BadAnswer(e));
                // The peer installed what it answered: have it deleted there.
                sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
                return Keep::Yes;
            }
        };
        let got = Narrowed { tsi, tsr };
        if !ts::check_response(&st.offer, &got) {
            self.failed(
                Some(sa),
                cfg.name,
                true,
                Failure::BadTsAnswer {
                    tsi: got.tsi,
                    tsr: got.tsr,
                    offered_tsi: st.offer.tsi.clone(),
                    offered_tsr: st.offer.tsr.clone(),
                },
            );
            // The peer installed what it answered: have it deleted there.
            sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
            return Keep::Yes;
        }
        let Some(outbound) = wire_answer.child_spi() else {
            self.failed(
                Some(sa),
                cfg.name,
                true,
                Failure::Protocol("Child SA answer without a 4-byte SPI".into()),
            );
            // The peer installed what it answered: have it deleted there.
            sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
            return Keep::Yes;
        };
        let policy_name = cfg
            .policies
            .get(st.policy)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        match self.child_info(
            sa,
            &policy_name,
            &sel,
            st.child_spi,
            outbound,
            &st.transcript.ni,
            &st.transcript.nr,
            None,
            got.tsi,
            got.tsr,
            true, // IKE_AUTH: we asked
        ) {
            Ok(i) => self.add_child(now, sa, i, st.policy),
            Err(f) => {
                sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
                self.failed(Some(sa), cfg.name, true, f);
            }
        }
        // One Child SA per proxy ID (R-V2-6): the others with CREATE_CHILD_SA.
        for policy in 1..cfg.policies.len() {
            sa.push_work(Work::CreateChild {
                policy,
                rekey: None,
                group: None,
                tries: 0,
            });
        }
        Keep::Yes
    }

    /// The responder's AUTH did not verify: tell it in a new INFORMATIONAL exchange.
    fn tell_auth_failed(&mut self, sa: &mut IkeSa) {
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.2
        //# If the error occurred on the initiator, the notification MAY be returned in a
        //# separate INFORMATIONAL exchange, usually with no other payloads.
        self.send_once(
            sa,
            ExchangeType::INFORMATIONAL,
            &[Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::AUTHENTICATION_FAILED,
                &[],
            )))],
        );
    }

    // -----------------------------------------------------------------------------------
    // Protected requests and responses

    /// Sends a protected response and caches it for retransmitted requests.
    fn respond(&mut self, sa: &mut IkeSa, req: &Header, inner: &[Payload<'_>]) {
        let header = sa.header(req.exchange_type, req.message_id, true);
        let Some(keys) = &sa.keys else {
            return;
        };
        let Ok(msg) = keys.seal(&mut *self.rng, header, inner) else {
            return;
        };
        sa.responses.record(req.message_id, vec![msg.clone()]);
        self.send(sa.local, sa.remote, &msg);
    }

    fn handle_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Keep {
        match sa.responses.classify(header.message_id) {
            RequestClass::Drop => return Keep::Yes,
            RequestClass::Retransmit(d) => {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.1
                //# the responder MUST retransmit the response
                let d = d.to_vec();
                for m in d {
                    self.send(sa.local, sa.remote, &m);
                }
                return Keep::Yes;
            }
            RequestClass::New => {}
        }
        let Ok(msg) = Message::parse(data) else {
            return Keep::Yes;
        };
        let Some(keys) = &sa.keys else {
            return Keep::Yes;
        };
        // An ICV failure is a silent drop (§2.21.2? no: §3.14 "MUST be discarded").
        let Ok((first, plain)) = keys.open(data, &msg) else {
            return Keep::Yes;
        };
        let Ok(inner) = parse_payloads(first, &plain) else {
            return Keep::Yes;
        };
        // Authentic: the peer is alive, and its address may have changed (NAT, §2.23).
        sa.liveness.on_receive(now);
        if local.port() == NATT_PORT {
            sa.local = local;
            sa.remote = remote;
        }
        // A new request proves that the peer processed our earlier answers (§2.3, window
        // size 1): the pairs they made are installed there.
        self.flush_switches(sa, Some(header.message_id), None);
        if unsupported_critical(&inner) {
            self.respond(
                sa,
                header,
                &[Payload::new(PayloadBody::Notify(Notify::new(
                    NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
                    &[],
                )))],
            );
            return Keep::Yes;
        }
        let deletes_ike = inner
            .iter()
            .any(|p| matches!(&p.body, PayloadBody::Delete(d) if d.protocol == ProtocolId::IKE));
        if !sa.announced && sa.established() && !deletes_ike {
            // A request on the SA the peer made in a crossing IKE SA rekey, before our own
            // rekey is answered: the peer uses it, so it is the survivor (§2.8.2).
            let ours = sa.our_spi().0;
            let old = self.sas.iter().find_map(|(k, o)| match &o.pending {
                Some(Pending::IkeRekey(r))
                    if r.collision.as_ref().is_some_and(|c| c.created == ours) =>
                {
                    Some(*k)
                }
                _ => None,
            });
            if let Some(k) = old
                && let Some(mut o) = self.sas.remove(&k)
            {
                self.move_into(now, &mut o, sa);
                self.sas.insert(k, o);
            }
        }
        let half_open = sa.half_open();
        let established = matches!(sa.state, State::Established);
        match header.exchange_type {
            ExchangeType::IKE_AUTH if half_open => {
                self.handle_auth_request(now, sa, header, &inner)
            }
            ExchangeType::INFORMATIONAL if established => {
                self.handle_informational(now, sa, header, &inner)
            }
            ExchangeType::CREATE_CHILD_SA if established => {
                self.handle_create_child_request(now, sa, header, &inner)
            }
            _ => Keep::Yes,
        }
    }

    fn handle_informational(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        let name = self.peers[sa.peer].name.clone();
        let mut delete_ike = false;
        let mut ours: Vec<(ProtocolId, Spi)> = Vec::new();
        for p in inner {
            if let PayloadBody::Delete(d) = &p.body {
                if d.protocol == ProtocolId::IKE {
                    delete_ike = true;
                } else {
                    for spi in d.child_spis() {
                        // The peer names its inbound SPI = our outbound.
                        let Some(pos) = sa
                            .children
                            .iter()
                            .position(|c| c.outbound == spi && c.protocol == d.protocol)
                        else {
                            if let Some(Pending::Child(r)) = &mut sa.pending
                                && r.deleted_early.len() < 8
                            {
                                r.deleted_early.push(spi);
                            }
                            continue;
                        };
                        // The rekey initiator's DELETE of the old pair: the new one is installed
                        // there (R-V2-10), and traffic moves before the old one goes.
                        let inbound = sa.children[pos].inbound;
                        self.flush_switch(sa, inbound);
                        if let Some(Pending::Child(r)) = &sa.pending
                            && r.rekey == Some(inbound)
                            && let Some(col) = &r.collision
                        {
                            // §2.8.1: the peer's rekey of it crossed ours and the peer
                            // deletes it, so the peer completed its exchange and installed
                            // the pair it made: traffic moves there now, not when our own
                            // (redundant) answer comes.
                            let to = Spi(col.created as u32);
                            self.child_rekeyed(sa, inbound, to);
                        }
                        let c = sa.remove_child(pos);
                        //= https://www.rfc-editor.org/rfc/rfc7296#section-1.4.1
                        //# If a node receives a delete request for SAs for which it has
                        //# already issued a delete request, it MUST delete the outgoing SAs
                        //# while processing the request and the incoming SAs while
                        //# processing the response.  In that case, the responses MUST NOT
                        //# include Delete payloads for the deleted SAs
                        if c.state != ChildState::Deleting {
                            ours.push((c.protocol, c.inbound));
                        }
                        self.event(Event::ChildSaDown {
                            ike_sa: IkeSaHandle(sa.our_spi()),
                            inbound_spi: c.inbound,
                            outbound_spi: c.outbound,
                            reason: DownReason::PeerDelete,
                        });
                    }
                }
            }
        }
        if !delete_ike
            && ours.is_empty()
            && find_notify(inner, NotifyType::AUTHENTICATION_FAILED).is_some()
        {
            // §2.21.2: the initiator could not verify our AUTH and says so in its own
            // INFORMATIONAL: the IKE SA is dead.
            self.respond(sa, header, &[]);
            self.failed(
                Some(sa),
                name,
                false,
                Failure::PeerRefused {
                    notify: NotifyType::AUTHENTICATION_FAILED,
                },
            );
            self.ike_down(sa, DownReason::PeerDelete);
            return Keep::No;
        }
        if delete_ike {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-1.4.1
            //# the responder ... MUST send an empty INFORMATIONAL response
            self.respond(sa, header, &[]);
            if matches!(sa.life, Life::Rekeyed(_)) {
                // The rekey initiator deletes the old IKE SA; its children live on.
                return Keep::No;
            }
            if let Some(Pending::IkeRekey(r)) = &sa.pending
                && let Some(c) = &r.collision
            {
                // §2.8.2: the peer won a rekey collision and deleted the old SA before our
                // response came: the SA it created takes over.
                let new = IkeSpi(c.created);
                self.move_to(now, sa, new);
                return Keep::No;
            }
            self.ike_down(sa, DownReason::PeerDelete);
            return Keep::No;
        }
        // Answer child deletes with the SPIs of our halves (§1.4.1), grouped by protocol.
        let mut bufs: Vec<(ProtocolId, Vec<u8>)> = Vec::new();
        for (proto, spi) in ours {
            match bufs.iter_mut().find(|(p, _)| *p == proto) {
                Some((_, b)) => b.extend_from_slice(&spi.0.to_be_bytes()),
                None => bufs.push((proto, spi.0.to_be_bytes().to_vec())),
            }
        }
        let out: Vec<Payload<'_>> = bufs
            .iter()
            .map(|(proto, spis)| {
                Payload::new(PayloadBody::Delete(Delete {
                    protocol: *proto,
                    spi_size: 4,
                    spis,
                }))
            })
            .collect();
        self.respond(sa, header, &out);
        Keep::Yes
    }

    /// The IKE SA `old` was replaced by the one with our SPI `new` (already in the map):
    /// its Child SAs and queued work move there (§2.18), and the application learns the new
    /// handle. `old` becomes `Rekeyed`.
    fn move_to(&mut self, now: Instant, old: &mut IkeSa, new: IkeSpi) {
        let Some(mut n) = self.sas.remove(&new) else {
            // The new SA is gone too: so are the children.
            self.ike_down(old, DownReason::IkeSaGone);
            return;
        };
        self.move_into(now, old, &mut n);
        self.pump(now, &mut n);
        self.sas.insert(new, n);
    }

    fn move_into(&mut self, now: Instant, old: &mut IkeSa, n: &mut IkeSa) {
        let new = n.our_spi();
        for mut c in std::mem::take(&mut old.children) {
            // Message IDs are per IKE SA: only the DELETE or the deadline release it now.
            if let Some(s) = &mut c.switch {
                s.made_in = None;
            }
            if c.state == ChildState::Rekeying {
                c.state = ChildState::Installed;
            }
            n.push_child(c);
        }
        for w in std::mem::take(&mut old.queue) {
            if !matches!(w, Work::DeleteIke | Work::RekeyIke { .. } | Work::Liveness) {
                n.push_work(w);
            }
        }
        for (at, w) in std::mem::take(&mut old.deferred) {
            if !matches!(w, Work::RekeyIke { .. }) && n.deferred.len() < MAX_QUEUED_WORK {
                n.deferred.push((at, w));
            }
        }
        n.cleanup_at = None;
        n.peer_id = old.peer_id.clone();
        n.rekeys_since_auth = old.rekeys_since_auth + 1;
        n.established_at = old.established_at;
        n.created = old.created;
        n.replaces = old.replaces.take();
        n.being_replaced = old.being_replaced;
        if !n.announced {
            n.announced = true;
            self.set_ike_lifetimes(now, n);
            if let Some(id) = n.peer_id.clone() {
                let info = self.info(n, id);
                self.event(Event::IkeSaRekeyed {
                    old: IkeSaHandle(old.our_spi()),
                    new: info,
                });
            }
        }
        old.announced = false;
        old.life = Life::Rekeyed(now + self.config.retransmit.total());
        old.soft = None;
        old.hard = None;
        let old_spi = old.our_spi();
        // Handles that pointed at the old SA point at the new one.
        let moved = self.alias_rev.remove(&old_spi).unwrap_or_default();
        for from in &moved {
            self.aliases.insert(*from, new);
        }
        if !moved.is_empty() {
            self.alias_rev.entry(new).or_default().extend(moved);
        }
        if self.aliases.len() < 4 * MAX_EVENTS {
            if let Some(prev) = self.aliases.insert(old_spi, new)
                && let Some(set) = self.alias_rev.get_mut(&prev)
            {
                set.remove(&old_spi);
            }
            self.alias_rev.entry(new).or_default().insert(old_spi);
        }
    }

    fn handle_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Keep {
        if sa.requests.in_flight() != Some(header.message_id) {
            // §2.3: a response to nothing we wait for.
            return Keep::Yes;
        }
        if header.exchange_type == ExchangeType::IKE_SA_INIT {
            if matches!(sa.state, State::InitSent(_)) {
                return self.handle_init_response(now, sa, local, remote, header, data);
            }
            return Keep::Yes;
        }
        let Ok(msg) = Message::parse(data) else {
            return Keep::Yes;
        };
        let Some(keys) = &sa.keys else {
            return Keep::Yes;
        };
        let Ok((first, plain)) = keys.open(data, &msg) else {
            return Keep::Yes;
        };
        let Ok(inner) = parse_payloads(first, &plain) else {
            return Keep::Yes;
        };
        if !sa.requests.handle_response(header.message_id) {
            return Keep::Yes;
        }
        sa.liveness.on_receive(now);
        let auth_sent = matches!(sa.state, State::AuthSent(_));
        let established = matches!(sa.state, State::Established);
        match header.exchange_type {
            ExchangeType::IKE_AUTH if auth_sent => self.handle_auth_response(now, sa, &inner),
            ExchangeType::CREATE_CHILD_SA if established => match sa.pending.take() {
                Some(Pending::Child(req)) => {
                    self.handle_create_child_response(now, sa, *req, &inner);
                    Keep::Yes
                }
                Some(Pending::IkeRekey(req)) => {
                    self.handle_ike_rekey_response(now, sa, *req, &inner);
                    Keep::Yes
                }
                _ => Keep::Yes,
            },
            ExchangeType::INFORMATIONAL if established => match sa.pending.take() {
                Some(Pending::Work(Work::DeleteIke)) => {
                    self.ike_down(sa, DownReason::LocalDelete);
                    Keep::No
                }
                Some(Pending::Work(Work::DeleteChild(inbound))) => {
                    self.flush_switch(sa, inbound);
                    if let Some(pos) = sa.children.iter().position(|c| c.inbound == inbound) {
                        let c = sa.remove_child(pos);
                        self.event(Event::ChildSaDown {
                            ike_sa: IkeSaHandle(sa.our_spi()),
                            inbound_spi: c.inbound,
                            outbound_spi: c.outbound,
                            reason: DownReason::LocalDelete,
                        });
                    }
                    Keep::Yes
                }
                _ => Keep::Yes,
            },
            _ => Keep::Yes,
        }
    }

    // -----------------------------------------------------------------------------------
    // CREATE_CHILD_SA (§1.3.1 new Child SA, §1.3.3 Child SA rekey, §1.3.2 IKE SA rekey)

    #[allow(clippy::too_many_arguments)]
    fn start_create_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        policy: usize,
        rekey: Option<Spi>,
        group: Option<DhGroup>,
        tries: u8,
    ) -> Result<(), CommandError> {
        if let Some(old) = rekey {
            match sa.child(old) {
                Some(c) if c.state == ChildState::Installed => {}
                // Deleted, replaced or being rekeyed meanwhile: nothing to do.
                _ => return Err(CommandError::NoSuchSa),
            }
        }
        if sa.life != Life::Normal {
            return Err(CommandError::Busy);
        }
        let cfg = &self.peers[sa.peer];
        let pol = cfg
            .policies
            .get(policy)
            .cloned()
            .ok_or_else(|| CommandError::Config("no such policy".into()))?;
        let proposals = cfg.child_proposals.clone();
        // PFS when the Child SA proposals name a group (or the peer asked for one).
        let pfs = group.or_else(|| first_group(&proposals));
        let kex = match pfs {
            Some(g) => Some(
                self.provider
                    .key_exchange(g.0)
                    .and_then(|k| k.start(&mut *self.rng))
                    .map_err(|e| CommandError::Config(e.to_string()))?,
            ),
            None => None,
        };
        let spi = self.new_child_spi();
        let ni = self.random_bytes(NONCE_LEN);
        let proposals = with_spi(&proposals, spi);
        let (tsi, tsr) = pol.initiator_offer();
        let old_spi = rekey.map(|s| s.0.to_be_bytes());
        let proto = proposals.first().map_or(ProtocolId::ESP, |p| p.protocol);
        let mut inner = Vec::new();
        if let Some(old) = &old_spi {
            inner.push(Payload::new(PayloadBody::Notify(Notify {
                protocol: proto,
                spi: old,
                ty: NotifyType::REKEY_SA,
                data: &[],
            })));
        }
        inner.push(Payload::new(PayloadBody::Sa(proposals_to_wire(&proposals))));
        inner.push(Payload::new(PayloadBody::Nonce(&ni)));
        if let Some(k) = &kex {
            inner.push(Payload::new(PayloadBody::Ke(KeyExchange {
                group: DhGroup(k.group()),
                data: k.public_key(),
            })));
        }
        inner.push(Payload::new(PayloadBody::TsI(tsi.to_wire())));
        inner.push(Payload::new(PayloadBody::TsR(tsr.to_wire())));
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::CREATE_CHILD_SA, id, false);
        let Some(keys) = &sa.keys else {
            return Err(CommandError::Busy);
        };
        let msg = keys
            .seal(&mut *self.rng, header, &inner)
            .map_err(|e| CommandError::Config(e.to_string()))?;
        drop(inner);
        sa.requests
            .start(now, vec![msg.clone()], self.config.retransmit);
        if let Some(old) = rekey
            && let Some(c) = sa.child_mut(old)
        {
            c.state = ChildState::Rekeying;
        }
        sa.pending = Some(Pending::Child(Box::new(ChildRequest {
            policy,
            rekey,
            spi,
            ni,
            kex,
            offer: Narrowed { tsi, tsr },
            proposals,
            tries,
            collision: None,
            deleted_early: Vec::new(),
        })));
        self.send(sa.local, sa.remote, &msg);
        Ok(())
    }

    fn child_error(&mut self, sa: &mut IkeSa, header: &Header, ty: NotifyType, data: &[u8]) {
        self.respond(
            sa,
            header,
            &[Payload::new(PayloadBody::Notify(Notify::new(ty, data)))],
        );
    }

    /// A random delay before retrying after TEMPORARY_FAILURE, so that two peers that
    /// collided do not collide again.
    fn retry_at(&mut self, now: Instant) -> Instant {
        let mut b = [0u8; 4];
        self.rng.fill(&mut b);
        let ms = u64::from(u32::from_be_bytes(b)) % (RETRY_DELAY.as_millis() as u64 + 1);
        now + RETRY_DELAY + std::time::Duration::from_millis(ms)
    }

    fn defer(&mut self, now: Instant, sa: &mut IkeSa, w: Work) {
        let at = self.retry_at(now);
        if sa.deferred.len() < MAX_QUEUED_WORK {
            sa.deferred.push((at, w));
        }
    }

    /// Responder: CREATE_CHILD_SA request on an established SA.
    fn handle_create_child_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        let cfg = self.peers[sa.peer].clone();
        let mut child_sa = None;
        let mut nonce = None;
        let mut ke = None;
        let mut tsi = None;
        let mut tsr = None;
        let mut rekey = None;
        for p in inner {
            match &p.body {
                PayloadBody::Sa(s) => child_sa = Some(s),
                PayloadBody::Nonce(n) => nonce = Some(*n),
                PayloadBody::Ke(k) => ke = Some(*k),
                PayloadBody::TsI(t) => tsi = Some(TsSet::from_wire(t)),
                PayloadBody::TsR(t) => tsr = Some(TsSet::from_wire(t)),
                PayloadBody::Notify(n) if n.ty == NotifyType::REKEY_SA => rekey = Some(*n),
                _ => {}
            }
        }
        let (Some(csa), Some(ni)) = (child_sa, nonce) else {
            self.child_error(sa, header, NotifyType::INVALID_SYNTAX, &[]);
            return Keep::Yes;
        };
        if !(16..=256).contains(&ni.len()) {
            self.child_error(sa, header, NotifyType::INVALID_SYNTAX, &[]);
            return Keep::Yes;
        }
        let offered = offered_proposals(csa);
        if offered.iter().any(|(_, p)| p.protocol == ProtocolId::IKE) {
            return self.handle_ike_rekey_request(now, sa, header, &offered, ni, ke);
        }
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.2
        //# If a peer receives a request to rekey a Child SA when it is currently
        //# rekeying the IKE SA, it SHOULD reply with TEMPORARY_FAILURE.
        // The same while the IKE SA is replaced or being deleted: the new Child SA would
        // belong to an IKE SA on its way out.
        if sa.life != Life::Normal || sa.deleting() {
            self.child_error(sa, header, NotifyType::TEMPORARY_FAILURE, &[]);
            return Keep::Yes;
        }
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            self.child_error(sa, header, NotifyType::INVALID_SYNTAX, &[]);
            return Keep::Yes;
        };
        // A rekey names the peer's inbound SPI of the old pair, i.e. our outbound.
        let rekeyed = match rekey {
            Some(n) => match n.child_spi() {
                Some(spi) => match sa.children.iter().find(|c| c.outbound == spi) {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.1
                    //# If a peer receives a request to rekey a Child SA that does not exist,
                    //# it SHOULD reply with CHILD_SA_NOT_FOUND.
                    // Unless our own CREATE_CHILD_SA is in flight: the SA may be the one
                    // it makes (the peer answered, we have not seen the answer yet).
                    None if matches!(sa.pending, Some(Pending::Child(_))) => {
                        self.child_error(sa, header, NotifyType::TEMPORARY_FAILURE, &[]);
                        return Keep::Yes;
                    }
                    None => {
                        self.child_error(sa, header, NotifyType::CHILD_SA_NOT_FOUND, &[]);
                        return Keep::Yes;
                    }
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.1
                    //# If a peer receives a request to rekey a Child SA that it is currently
                    //# trying to close, it SHOULD reply with TEMPORARY_FAILURE.
                    Some(c) if matches!(c.state, ChildState::Rekeyed | ChildState::Deleting) => {
                        self.child_error(sa, header, NotifyType::TEMPORARY_FAILURE, &[]);
                        return Keep::Yes;
                    }
                    Some(c) => Some(c.inbound),
                },
                None => {
                    self.child_error(sa, header, NotifyType::INVALID_SYNTAX, &[]);
                    return Keep::Yes;
                }
            },
            None => None,
        };
        if rekeyed.is_none() && sa.children.len() >= MAX_CHILD_SAS {
            self.child_error(sa, header, NotifyType::NO_ADDITIONAL_SAS, &[]);
            return Keep::Yes;
        }
        let sel = match proposal::select(&offered, &cfg.child_proposals, SelectOptions::default()) {
            Ok(s) => s,
            Err(e) => {
                self.child_error(sa, header, NotifyType::NO_PROPOSAL_CHOSEN, &[]);
                self.failed(Some(sa), cfg.name, true, Failure::NoProposalChosen(e));
                return Keep::Yes;
            }
        };
        let (idx, narrowed) = match ts::select_policy(&tsi, &tsr, &cfg.policies) {
            Ok(x) => x,
            Err(e) => {
                self.child_error(sa, header, NotifyType::TS_UNACCEPTABLE, &[]);
                self.failed(Some(sa), cfg.name, true, Failure::TsUnacceptable(e));
                return Keep::Yes;
            }
        };
        // PFS: the KE payload must be of the chosen group (§1.3.1, INVALID_KE_PAYLOAD).
        let mut our_ke = None;
        if let Some(g) = sel.ke {
            let resp = match ke {
                Some(k) if k.group == g => self
                    .provider
                    .key_exchange(g.0)
                    .and_then(|alg| alg.respond(&mut *self.rng, k.data)),
                _ => {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-1.3
                    //# the responder MUST reject the request and indicate its preferred
                    //# Diffie-Hellman group in the INVALID_KE_PAYLOAD Notify payload.
                    self.child_error(
                        sa,
                        header,
                        NotifyType::INVALID_KE_PAYLOAD,
                        &g.0.to_be_bytes(),
                    );
                    return Keep::Yes;
                }
            };
            match resp {
                Ok(r) => our_ke = Some((g, r)),
                Err(_) => {
                    self.child_error(sa, header, NotifyType::INVALID_SYNTAX, &[]);
                    return Keep::Yes;
                }
            }
        }
        let Some(outbound) = sel
            .spi
            .as_slice()
            .try_into()
            .ok()
            .map(|b: [u8; 4]| Spi(u32::from_be_bytes(b)))
        else {
            self.child_error(sa, header, NotifyType::INVALID_SYNTAX, &[]);
            return Keep::Yes;
        };
        let inbound = self.new_child_spi();
        let nr = self.random_bytes(NONCE_LEN);
        let info = match self.child_info(
            sa,
            &cfg.policies[idx].name,
            &sel,
            inbound,
            outbound,
            ni,
            &nr,
            our_ke.as_ref().map(|(_, r)| &r.shared),
            narrowed.tsi.clone(),
            narrowed.tsr.clone(),
            false, // CREATE_CHILD_SA: we answer
        ) {
            Ok(i) => i,
            Err(f) => {
                self.child_error(sa, header, NotifyType::NO_PROPOSAL_CHOSEN, &[]);
                self.failed(Some(sa), cfg.name, true, f);
                return Keep::Yes;
            }
        };
        let answer = sel.to_proposal(inbound.0.to_be_bytes().to_vec());
        let mut out = vec![
            Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![answer.to_wire(sel.number)],
            })),
            Payload::new(PayloadBody::Nonce(&nr)),
        ];
        if let Some((g, r)) = &our_ke {
            out.push(Payload::new(PayloadBody::Ke(KeyExchange {
                group: *g,
                data: &r.public,
            })));
        }
        out.push(Payload::new(PayloadBody::TsI(narrowed.tsi.to_wire())));
        out.push(Payload::new(PayloadBody::TsR(narrowed.tsr.to_wire())));
        self.respond(sa, header, &out);
        self.add_child(now, sa, info, idx);
        if let Some(old) = rekeyed {
            match &mut sa.pending {
                Some(Pending::Child(r)) if r.rekey == Some(old) => {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.1
                    //# If a peer receives a request to rekey a Child SA that it is currently
                    //# rekeying, it SHOULD reply as usual, and SHOULD prepare to close
                    //# redundant SAs later based on the nonces (see Section 2.8.1).
                    r.collision = Some(Collision {
                        nonce: min_nonce(ni, &nr),
                        #[cfg(test)]
                        nonces: (ni.to_vec(), nr.clone()),
                        created: u64::from(inbound.0),
                        made_in: header.message_id,
                    });
                }
                _ => {
                    // The old pair stays until the initiator deletes it (§2.8); outbound
                    // traffic moves once the initiator has installed the new pair.
                    if let Some(c) = sa.child_mut(old) {
                        c.state = ChildState::Rekeyed;
                        c.soft = None;
                    }
                    self.switch_outbound(now, sa, old, inbound, Some(header.message_id));
                }
            }
        }
        Keep::Yes
    }

    /// Outbound traffic of `old` is to move to `new`, a pair the peer made in its request
    /// `made_in` on this IKE SA: now if a later request of the peer already came (it
    /// processed our answer), else when one comes (see [`Switch`]).
    fn switch_outbound(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        old: Spi,
        new: Spi,
        made_in: Option<MessageId>,
    ) {
        let answered = made_in.is_some_and(|m| sa.responses.expected().0 > m.0.wrapping_add(1));
        if answered || made_in.is_none() {
            self.child_rekeyed(sa, old, new);
            return;
        }
        let by = now + self.config.retransmit.total();
        if let Some(c) = sa.child_mut(old) {
            c.switch = Some(Switch {
                to: new,
                made_in,
                by,
            });
        }
    }

    /// Makes the pending switch of `old` (if any) now.
    fn flush_switch(&mut self, sa: &mut IkeSa, old: Spi) {
        if let Some(s) = sa.child_mut(old).and_then(|c| c.switch.take()) {
            self.child_rekeyed(sa, old, s.to);
        }
    }

    /// Makes the pending switches that a new request `id` of the peer, or time `now`,
    /// releases.
    fn flush_switches(&mut self, sa: &mut IkeSa, id: Option<MessageId>, now: Option<Instant>) {
        let due: Vec<Spi> = sa
            .children
            .iter()
            .filter(|c| {
                c.switch.is_some_and(|s| {
                    id.is_some_and(|id| s.made_in.is_some_and(|m| id.0 > m.0))
                        || now.is_some_and(|t| t >= s.by)
                })
            })
            .map(|c| c.inbound)
            .collect();
        for old in due {
            self.flush_switch(sa, old);
        }
    }

    /// Reports the switch of outbound traffic from `old` to `new`, unless one of them is gone
    /// (the switch was then reported before `old` went).
    fn child_rekeyed(&mut self, sa: &IkeSa, old: Spi, new: Spi) {
        if sa.child(old).is_some()
            && let Some(n) = sa.child(new)
        {
            let e = Event::ChildSaRekeyed {
                ike_sa: IkeSaHandle(sa.our_spi()),
                old_inbound_spi: old,
                new_inbound_spi: new,
                new_outbound_spi: n.outbound,
            };
            self.event(e);
        }
    }

    /// Our rekey of `old` is over without a new pair of ours: back to `Installed`.
    fn rekey_failed(sa: &mut IkeSa, old: Option<Spi>) {
        if let Some(old) = old
            && let Some(c) = sa.child_mut(old)
            && c.state == ChildState::Rekeying
        {
            c.state = ChildState::Installed;
        }
    }

    /// Initiator: CREATE_CHILD_SA response.
    fn handle_create_child_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        req: ChildRequest,
        inner: &[Payload<'_>],
    ) {
        let cfg = self.peers[sa.peer].clone();
        if let Some(n) = first_error_notify(inner) {
            if let (Some(old), Some(col)) = (req.rekey, &req.collision) {
                // §2.8.1: the peer's rekey of the same SA crossed ours and succeeded: its
                // new pair replaces the old one, whose delete the peer sends.
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                self.switch_outbound(now, sa, old, Spi(col.created as u32), Some(col.made_in));
                return;
            }
            Self::rekey_failed(sa, req.rekey);
            let group = req.kex.as_ref().map(|k| DhGroup(k.group()));
            match n {
                NotifyType::INVALID_KE_PAYLOAD => {
                    let wanted = find_notify(inner, NotifyType::INVALID_KE_PAYLOAD)
                        .and_then(|n| n.data.get(..2))
                        .map(|b| DhGroup(u16::from_be_bytes([b[0], b[1]])));
                    let ours = cfg.child_proposals.iter().any(|p| {
                        p.of_type(TransformType::KE)
                            .any(|t| Some(DhGroup(t.id)) == wanted)
                    });
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-1.3
                    //# the initiator ... retry the CREATE_CHILD_SA request with the group
                    //# the responder asked for
                    if let Some(g) = wanted
                        && ours
                        && Some(g) != group
                        && req.tries < MAX_TRIES
                    {
                        sa.push_work_front(Work::CreateChild {
                            policy: req.policy,
                            rekey: req.rekey,
                            group: Some(g),
                            tries: req.tries + 1,
                        });
                        return;
                    }
                }
                NotifyType::TEMPORARY_FAILURE if req.tries < MAX_TRIES => {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25
                    //# it SHOULD retry the request after a short delay
                    let w = Work::CreateChild {
                        policy: req.policy,
                        rekey: req.rekey,
                        group,
                        tries: req.tries + 1,
                    };
                    self.defer(now, sa, w);
                    return;
                }
                NotifyType::CHILD_SA_NOT_FOUND => {
                    // The peer has no such SA (deleted meanwhile): neither do we.
                    if let Some(old) = req.rekey
                        && let Some(pos) = sa.children.iter().position(|c| c.inbound == old)
                    {
                        let c = sa.remove_child(pos);
                        self.event(Event::ChildSaDown {
                            ike_sa: IkeSaHandle(sa.our_spi()),
                            inbound_spi: c.inbound,
                            outbound_spi: c.outbound,
                            reason: DownReason::PeerDelete,
                        });
                        return;
                    }
                }
                _ => {}
            }
            self.failed(Some(sa), cfg.name, true, Failure::PeerRefused { notify: n });
            return;
        }
        let mut child_sa = None;
        let mut nonce = None;
        let mut ke = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in inner {
            match &p.body {
                PayloadBody::Sa(s) => child_sa = Some(s),
                PayloadBody::Nonce(n) => nonce = Some(*n),
                PayloadBody::Ke(k) => ke = Some(*k),
                PayloadBody::TsI(t) => tsi = Some(TsSet::from_wire(t)),
                PayloadBody::TsR(t) => tsr = Some(TsSet::from_wire(t)),
                _ => {}
            }
        }
        let proto = child_sa
            .and_then(|c| c.proposals.first())
            .map_or(ProtocolId::ESP, |p| p.protocol);
        let result = self.check_child_answer(sa, &cfg, &req, child_sa, nonce, ke, tsi, tsr);
        let (info, nr) = match result {
            Ok(x) => x,
            Err(f) => {
                if child_sa.is_some() {
                    // The peer installed what it answered: have it deleted there.
                    sa.push_work_front(Work::DeleteRejected(proto, req.spi));
                }
                if let (Some(old), Some(col)) = (req.rekey, &req.collision) {
                    if let Some(c) = sa.child_mut(old) {
                        c.state = ChildState::Rekeyed;
                        c.soft = None;
                    }
                    self.switch_outbound(now, sa, old, Spi(col.created as u32), Some(col.made_in));
                } else {
                    Self::rekey_failed(sa, req.rekey);
                }
                self.failed(Some(sa), cfg.name, true, f);
                return;
            }
        };
        let new = info.inbound_spi;
        if !req.deleted_early.contains(&info.outbound_spi) {
            self.add_child(now, sa, info, req.policy);
        }
        let Some(old) = req.rekey else {
            return;
        };
        let ours = min_nonce(&req.ni, &nr);
        #[cfg(test)]
        if let Some(c) = &req.collision {
            self.collision_log.push(CollisionLog {
                ike: false,
                ours: (req.ni.clone(), nr.clone()),
                theirs: c.nonces.clone(),
                won: ours >= c.nonce,
                survivor: if ours >= c.nonce {
                    u64::from(new.0)
                } else {
                    c.created
                },
            });
        }
        match &req.collision {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.8.1
            //# If redundant SAs are created through such a collision, the SA created with
            //# the lowest of the four nonces used in the two exchanges SHOULD be closed by
            //# the endpoint that created it.
            Some(col) if ours < col.nonce => {
                // We lost: our new pair is redundant and ours to delete; the peer deletes
                // the old one.
                if let Some(c) = sa.child_mut(new) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                sa.push_work_front(Work::DeleteChild(new));
                // The survivor is the peer's: it installs it when it processes our answer.
                self.switch_outbound(now, sa, old, Spi(col.created as u32), Some(col.made_in));
            }
            col => {
                // We won (or there was no collision): the old pair goes (make-before-break:
                // the new one is installed). A redundant pair of the peer's is the peer's
                // to delete.
                if let Some(col) = col
                    && let Some(c) = sa.child_mut(Spi(col.created as u32))
                {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                    sa.push_work_front(Work::DeleteChild(old));
                }
                // The peer installed the new pair before it answered: switch now.
                match col {
                    Some(col) if sa.child(old).is_none() => {
                        // The peer deleted the old pair meanwhile and traffic moved to the
                        // pair the peer made: from there, then.
                        self.child_rekeyed(sa, Spi(col.created as u32), new);
                    }
                    _ => self.child_rekeyed(sa, old, new),
                }
            }
        }
    }

    /// Checks a CREATE_CHILD_SA answer; the new pair and Nr.
    #[allow(clippy::too_many_arguments)]
    fn check_child_answer(
        &mut self,
        sa: &IkeSa,
        cfg: &PeerConfig,
        req: &ChildRequest,
        child_sa: Option<&Sa<'_>>,
        nonce: Option<&[u8]>,
        ke: Option<KeyExchange<'_>>,
        tsi: Option<TsSet>,
        tsr: Option<TsSet>,
    ) -> Result<(ChildSaInfo, Vec<u8>), Failure> {
        let bad = |m: &str| Failure::Protocol(format!("CREATE_CHILD_SA response: {m}"));
        let (Some(csa), Some(nr), Some(tsi), Some(tsr)) = (child_sa, nonce, tsi, tsr) else {
            return Err(bad("missing SA, Nr or TS"));
        };
        if !(16..=256).contains(&nr.len()) {
            return Err(bad("nonce length"));
        }
        let (Some(wire_answer), 1) = (csa.proposals.first(), csa.proposals.len()) else {
            return Err(bad("must carry one proposal"));
        };
        let answer = Proposal::from_wire(wire_answer);
        let sel = proposal::check_answer(
            &req.proposals,
            wire_answer.number,
            &answer,
            SelectOptions::default(),
        )
        .map_err(Failure::BadAnswer)?;
        let g_ir = match (sel.ke, &req.kex, ke) {
            (None, _, _) => None,
            (Some(g), Some(kx), Some(k)) if k.group == g && kx.group() == g.0 => Some(
                kx.complete(k.data)
                    .map_err(|e| Failure::Crypto(e.to_string()))?,
            ),
            _ => return Err(bad("KE missing or of another group")),
        };
        let got = Narrowed { tsi, tsr };
        if !ts::check_response(&req.offer, &got) {
            return Err(Failure::BadTsAnswer {
                tsi: got.tsi,
                tsr: got.tsr,
                offered_tsi: req.offer.tsi.clone(),
                offered_tsr: req.offer.tsr.clone(),
            });
        }
        let Some(outbound) = wire_answer.child_spi() else {
            return Err(bad("no 4-byte SPI"));
        };
        let name = cfg
            .policies
            .get(req.policy)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let info = self.child_info(
            sa,
            &name,
            &sel,
            req.spi,
            outbound,
            &req.ni,
            nr,
            g_ir.as_ref(),
            got.tsi,
            got.tsr,
            true, // CREATE_CHILD_SA: we asked
        )?;
        Ok((info, nr.to_vec()))
    }

    // -----------------------------------------------------------------------------------
    // IKE SA rekey (§1.3.2, §2.18)

    fn start_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        group: Option<DhGroup>,
        tries: u8,
    ) -> Result<(), CommandError> {
        if sa.life != Life::Normal || sa.being_replaced || !sa.announced {
            return Err(CommandError::Busy);
        }
        let cfg = &self.peers[sa.peer];
        let proposals = cfg.ike_proposals.clone();
        let g = group
            .or_else(|| first_group(&proposals))
            .ok_or_else(|| CommandError::Config("IKE proposals name no DH group".into()))?;
        let kex = self
            .provider
            .key_exchange(g.0)
            .and_then(|k| k.start(&mut *self.rng))
            .map_err(|e| CommandError::Config(e.to_string()))?;
        let spi = self.new_ike_spi();
        let ni = self.random_bytes(NONCE_LEN);
        let proposals: Vec<Proposal> = proposals
            .iter()
            .map(|p| Proposal {
                spi: spi.0.to_be_bytes().to_vec(),
                ..p.clone()
            })
            .collect();
        let inner = [
            Payload::new(PayloadBody::Sa(proposals_to_wire(&proposals))),
            Payload::new(PayloadBody::Nonce(&ni)),
            Payload::new(PayloadBody::Ke(KeyExchange {
                group: g,
                data: kex.public_key(),
            })),
        ];
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::CREATE_CHILD_SA, id, false);
        let Some(keys) = &sa.keys else {
            return Err(CommandError::Busy);
        };
        let msg = keys
            .seal(&mut *self.rng, header, &inner)
            .map_err(|e| CommandError::Config(e.to_string()))?;
        sa.requests
            .start(now, vec![msg.clone()], self.config.retransmit);
        sa.life = Life::Rekeying;
        sa.pending = Some(Pending::IkeRekey(Box::new(IkeRekeyRequest {
            spi,
            ni,
            kex,
            proposals,
            tries,
            collision: None,
        })));
        self.send(sa.local, sa.remote, &msg);
        Ok(())
    }

    /// A new IKE SA made by a rekey exchange (either role), not yet in the map.
    #[allow(clippy::too_many_arguments)]
    fn rekeyed_sa(
        &self,
        now: Instant,
        old: &IkeSa,
        initiator: bool,
        spi_i: IkeSpi,
        spi_r: IkeSpi,
        keys: IkeKeys,
        proposal: Selected,
        nonce: Vec<u8>,
    ) -> IkeSa {
        IkeSa {
            peer: old.peer,
            initiator,
            spi_i,
            spi_r,
            local: old.local,
            remote: old.remote,
            state: State::Established,
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.18
            //# The new IKE SA MUST reset its message counters to 0.
            requests: Requests::new(MessageId(0)),
            responses: Responses::new(MessageId(0)),
            liveness: Liveness::new(self.peers[old.peer].liveness, now),
            pending: None,
            queue: VecDeque::new(),
            keys: Some(keys),
            proposal: Some(proposal),
            nat: old.nat,
            children: Vec::new(),
            life: Life::Normal,
            peer_id: old.peer_id.clone(),
            announced: false,
            nonce,
            created: now,
            established_at: Some(now),
            soft: None,
            hard: None,
            rekeys_since_auth: old.rekeys_since_auth + 1,
            replaces: None,
            being_replaced: false,
            deferred: Vec::new(),
            cleanup_at: None,
        }
    }

    /// Responder: CREATE_CHILD_SA that rekeys the IKE SA.
    fn handle_ike_rekey_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        offered: &[(u8, Proposal)],
        ni: &[u8],
        ke: Option<KeyExchange<'_>>,
    ) -> Keep {
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.2
        //# If a peer receives a request to rekey an IKE SA that it is currently trying to
        //# close, it SHOULD reply with TEMPORARY_FAILURE.
        // Likewise while one of our Child SA exchanges is in flight (its result would land
        // on the old IKE SA), as strongSwan does.
        if matches!(sa.life, Life::Rekeyed(_))
            || sa.deleting()
            || matches!(
                sa.pending,
                Some(Pending::Child(_) | Pending::Work(Work::DeleteChild(_)))
            )
        {
            self.child_error(sa, header, NotifyType::TEMPORARY_FAILURE, &[]);
            return Keep::Yes;
        }
        let cfg = self.peers[sa.peer].clone();
        let sel = match proposal::select(offered, &cfg.ike_proposals, SelectOptions::default()) {
            Ok(s) => s,
            Err(e) => {
                self.child_error(sa, header, NotifyType::NO_PROPOSAL_CHOSEN, &[]);
                self.failed(Some(sa), cfg.name, true, Failure::NoProposalChosen(e));
                return Keep::Yes;
            }
        };
        let Some(peer_spi) = <[u8; 8]>::try_from(sel.spi.as_slice())
            .ok()
            .map(|b| IkeSpi(u64::from_be_bytes(b)))
            .filter(|s| s.0 != 0)
        else {
            self.child_error(sa, header, NotifyType::INVALID_SYNTAX, &[]);
            return Keep::Yes;
        };
        let Some(g) = sel.ke else {
            self.child_error(sa, header, NotifyType::NO_PROPOSAL_CHOSEN, &[]);
            return Keep::Yes;
        };
        let kx = match ke {
            Some(k) if k.group == g => match self
                .provider
                .key_exchange(g.0)
                .and_then(|alg| alg.respond(&mut *self.rng, k.data))
            {
                Ok(kx) => kx,
                Err(_) => {
                    self.child_error(sa, header, NotifyType::INVALID_SYNTAX, &[]);
                    return Keep::Yes;
                }
            },
            _ => {
                self.child_error(
                    sa,
                    header,
                    NotifyType::INVALID_KE_PAYLOAD,
                    &g.0.to_be_bytes(),
                );
                return Keep::Yes;
            }
        };
        let mut our_spi = self.new_ike_spi();
        while our_spi == sa.our_spi() {
            our_spi = self.new_ike_spi();
        }
        let nr = self.random_bytes(NONCE_LEN);
        let Some(old_keys) = &sa.keys else {
            return Keep::Yes;
        };
        let keys = match IkeKeys::derive_rekey(
            &self.provider,
            &sel,
            old_keys,
            &kx.shared,
            ni,
            &nr,
            peer_spi,
            our_spi,
            false,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.child_error(sa, header, NotifyType::NO_PROPOSAL_CHOSEN, &[]);
                self.failed(Some(sa), cfg.name, true, Failure::Crypto(e.to_string()));
                return Keep::Yes;
            }
        };
        let answer = sel.to_proposal(our_spi.0.to_be_bytes().to_vec());
        let out = [
            Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![answer.to_wire(sel.number)],
            })),
            Payload::new(PayloadBody::Nonce(&nr)),
            Payload::new(PayloadBody::Ke(KeyExchange {
                group: g,
                data: &kx.public,
            })),
        ];
        self.respond(sa, header, &out);
        let nonce = min_nonce(ni, &nr);
        let new = self.rekeyed_sa(now, sa, false, peer_spi, our_spi, keys, sel, nonce.clone());
        self.sas.insert(our_spi, new);
        if let Some(Pending::IkeRekey(r)) = &mut sa.pending {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.2
            //# If a peer receives a request to rekey an IKE SA that it is currently
            //# rekeying, it SHOULD reply as usual, and SHOULD prepare to close redundant SAs
            //# later based on the nonces (see Section 2.8.2).
            r.collision = Some(Collision {
                nonce,
                #[cfg(test)]
                nonces: (ni.to_vec(), nr.clone()),
                created: our_spi.0,
                made_in: header.message_id,
            });
        } else {
            self.move_to(now, sa, our_spi);
        }
        Keep::Yes
    }

    /// Initiator: response to our IKE SA rekey.
    fn handle_ike_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        req: IkeRekeyRequest,
        inner: &[Payload<'_>],
    ) {
        let cfg = self.peers[sa.peer].clone();
        sa.life = Life::Normal;
        if let Some(n) = first_error_notify(inner) {
            if let Some(col) = &req.collision {
                // §2.8.2: the peer's rekey crossed ours and succeeded: its SA takes over.
                self.move_to(now, sa, IkeSpi(col.created));
                return;
            }
            let group = DhGroup(req.kex.group());
            match n {
                NotifyType::INVALID_KE_PAYLOAD => {
                    let wanted = find_notify(inner, NotifyType::INVALID_KE_PAYLOAD)
                        .and_then(|n| n.data.get(..2))
                        .map(|b| DhGroup(u16::from_be_bytes([b[0], b[1]])));
                    let ours = cfg.ike_proposals.iter().any(|p| {
                        p.of_type(TransformType::KE)
                            .any(|t| Some(DhGroup(t.id)) == wanted)
                    });
                    if let Some(g) = wanted
                        && ours
                        && g != group
                        && req.tries < MAX_TRIES
                    {
                        sa.push_work_front(Work::RekeyIke {
                            group: Some(g),
                            tries: req.tries + 1,
                        });
                        return;
                    }
                }
                NotifyType::TEMPORARY_FAILURE if req.tries < MAX_TRIES => {
                    let w = Work::RekeyIke {
                        group: Some(group),
                        tries: req.tries + 1,
                    };
                    self.defer(now, sa, w);
                    return;
                }
                _ => {}
            }
            self.failed(Some(sa), cfg.name, true, Failure::PeerRefused { notify: n });
            return;
        }
        let mut sa_p = None;
        let mut nonce = None;
        let mut ke = None;
        for p in inner {
            match &p.body {
                PayloadBody::Sa(s) => sa_p = Some(s),
                PayloadBody::Nonce(n) => nonce = Some(*n),
                PayloadBody::Ke(k) => ke = Some(*k),
                _ => {}
            }
        }
        let result = (|| {
            let bad = |m: &str| Failure::Protocol(format!("IKE SA rekey response: {m}"));
            let (Some(sa_p), Some(nr), Some(ke)) = (sa_p, nonce, ke) else {
                return Err(bad("missing SA, Nr or KE"));
            };
            if !(16..=256).contains(&nr.len()) {
                return Err(bad("nonce length"));
            }
            let (Some(w), 1) = (sa_p.proposals.first(), sa_p.proposals.len()) else {
                return Err(bad("must carry one proposal"));
            };
            let answer = Proposal::from_wire(w);
            let sel =
                proposal::check_answer(&req.proposals, w.number, &answer, SelectOptions::default())
                    .map_err(Failure::BadAnswer)?;
            let peer_spi = w
                .ike_spi()
                .filter(|s| s.0 != 0)
                .ok_or(bad("no 8-byte SPI"))?;
            if sel.ke.map(|g| g.0) != Some(req.kex.group()) || ke.group.0 != req.kex.group() {
                return Err(bad("KE of another group"));
            }
            let g_ir = req
                .kex
                .complete(ke.data)
                .map_err(|e| Failure::Crypto(e.to_string()))?;
            let old = sa.keys.as_ref().ok_or(bad("no keys"))?;
            let keys = IkeKeys::derive_rekey(
                &self.provider,
                &sel,
                old,
                &g_ir,
                &req.ni,
                nr,
                req.spi,
                peer_spi,
                true,
            )
            .map_err(|e| Failure::Crypto(e.to_string()))?;
            Ok((keys, sel, peer_spi, min_nonce(&req.ni, nr)))
        })();
        let (keys, sel, peer_spi, ours) = match result {
            Ok(x) => x,
            Err(f) => {
                self.failed(Some(sa), cfg.name, true, f);
                if let Some(col) = &req.collision {
                    self.move_to(now, sa, IkeSpi(col.created));
                }
                return;
            }
        };
        #[cfg(test)]
        if let (Some(c), Some(nr)) = (&req.collision, nonce) {
            self.collision_log.push(CollisionLog {
                ike: true,
                ours: (req.ni.clone(), nr.to_vec()),
                theirs: c.nonces.clone(),
                won: ours >= c.nonce,
                survivor: if ours >= c.nonce {
                    req.spi.0
                } else {
                    c.created
                },
            });
        }
        let mut new = self.rekeyed_sa(now, sa, true, req.spi, peer_spi, keys, sel, ours.clone());
        match &req.collision {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.8.2
            //# the SA created with the lowest of the four nonces used in the two exchanges
            //# SHOULD be closed by the endpoint that created it.
            Some(col) if ours < col.nonce => {
                // We lost: our new IKE SA is redundant and ours to delete; the peer's new SA
                // takes over, and the peer deletes the old one.
                new.push_work(Work::DeleteIke);
                self.sas.insert(req.spi, new);
                self.move_to(now, sa, IkeSpi(col.created));
                if let Some(mut n) = self.sas.remove(&req.spi) {
                    self.pump(now, &mut n);
                    self.sas.insert(req.spi, n);
                }
            }
            col => {
                if let Some(col) = col {
                    // The peer's redundant SA is the peer's to delete; if it does not, we
                    // do later.
                    let at = now + 2 * self.config.retransmit.total();
                    self.sas
                        .update(&IkeSpi(col.created), |p| p.cleanup_at = Some(at));
                }
                self.sas.insert(req.spi, new);
                self.move_to(now, sa, req.spi);
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.18
                //# After the new equivalent IKE SA is created, the initiator deletes the old
                //# IKE SA
                sa.push_work_front(Work::DeleteIke);
            }
        }
    }

    /// The retransmission policy in use.
    pub fn retransmit_policy(&self) -> RetransmitPolicy {
        self.config.retransmit
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

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
