//! IKEv1 (RFC 2409 over ISAKMP, RFC 2408), sans-IO like [`crate::v2`] and behind the same
//! [`crate::Ike`] facade, reporting the same [`Event`]s.
//!
//! - Phase 1 (`phase1.rs`): main mode (6 messages, identities encrypted) and aggressive mode
//!   (3 messages), pre-shared key; SKEYID/SKEYID_d/a/e and the CBC IV chain of Appendix B;
//!   the initiator retransmits, the responder answers a retransmitted request with its last
//!   message.
//!   NAT traversal (RFC 3947: vendor IDs, NAT-D, the float to 4500); INITIAL-CONTACT sent on
//!   first contact and honoured (a restarted peer's stale SAs go at once).
//! - Phase 2 (`quick.rs`): quick mode with proxy IDs (IDci/IDcr), PFS, ESP or AH in tunnel
//!   mode (UDP-encapsulated behind a NAT); each policy of the gateway gets its SA pair;
//!   lifetimes in seconds and kilobytes, RESPONDER-LIFETIME both ways; rekeyed before the
//!   lifetime ends, make-before-break. The responder takes ESP on a pair from its message 2
//!   and sends on it from HASH(3); the initiator of a rekey switches 1 s after HASH(3), or at
//!   the responder's CONNECTED when it set the commit bit (RFC 2408 §3.1; we set it only when
//!   asked, [`Engine::set_commit_bit`]).
//! - Informational (`info.rs`): DELETE of phase-1 and phase-2 SAs both ways, DPD (RFC 3706)
//!   only when no ESP arrives ([`Engine::traffic_seen`]).
//!
//! Peers are the IKEv2 engine's [`PeerConfig`]s (same [`PeerId`]s), with the IKEv1 settings
//! of [`Settings`]. The proposals of the IKE and IPSec crypto profiles are mapped to IKEv1
//! transforms on the wire ([`payloads`]) and selected with the version-neutral
//! [`crate::proposal::select`], so a refusal reads the same for both versions.
//!
//! Choices where the RFCs leave room (as strongSwan does): a responder accepts any proposed
//! lifetime, answers with it, uses the shorter of the two and tells the peer its own with
//! RESPONDER-LIFETIME; a quick-mode responder takes the policy whose proxy ID is the mirror
//! image of the peer's (exactly), else the first whose proxy ID contains the peer's; a policy
//! without proxy IDs ("any") offers 0.0.0.0/0 both ways.
//!
//! Authentication (`certs.rs` for signatures): a pre-shared key, or RSA / ECDSA signatures
//! with certificates ([`Engine::set_certificates`]). IKE fragmentation (`frag.rs`) as
//! strongSwan and Cisco speak it, for large phase-1 messages (certificate chains).

mod certs;
mod frag;
mod info;
#[cfg(test)]
mod kat;
pub mod payloads;
mod peers;
mod phase1;
mod quick;
mod sa;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_certs;
#[cfg(test)]
mod tests_quick;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosec_crypto::{Provider, Rng};
use ferrosec_wire::isakmp::{ExchangeType, PayloadType};
use ferrosec_wire::{IkeSpi, Spi};

use crate::Transmit;
use crate::event::{DownReason, Event, IkeSaHandle, IkeSaInfo};
use crate::retransmit::RetransmitPolicy;
use crate::v2::{CommandError, NATT_PORT, PeerConfig, PeerId, PolicyId, SaLifetime};
use sa::Sa;

/// IKEv1 messages from addresses without an IKEv1 gateway are reported at most this often.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// The most sources named in one report.
const MAX_SOURCES: usize = 8;
/// The most ISAKMP SAs (of all states) the engine keeps; a new negotiation beyond it is
/// refused.
const MAX_SAS: usize = 100_000;
/// The most half-open (not yet authenticated) responder SAs.
const MAX_HALF_OPEN: usize = 1_000;
/// A responder's half-open SA is dropped after this long.
const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Nonce length.
const NONCE_LEN: usize = 32;

/// Phase-1 exchange mode (R-V1-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Main mode: 6 messages, identities encrypted.
    Main,
    /// Aggressive mode: 3 messages, one DH group, identities in the clear.
    Aggressive,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Main => "ikev1-main",
            Mode::Aggressive => "ikev1-aggressive",
        })
    }
}

/// Dead peer detection (RFC 3706).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpdSettings {
    /// Idle time before an R-U-THERE.
    pub interval: Duration,
    /// R-U-THEREs without an answer before the peer is declared dead.
    pub retry: u32,
}

/// The IKEv1 settings of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The phase-1 mode we initiate with (as responder we answer either).
    pub mode: Mode,
    /// DPD; `None` = off.
    pub dpd: Option<DpdSettings>,
    /// The ISAKMP SA lifetime; `None` = no rekey, no expiry.
    pub ike_lifetime: Option<SaLifetime>,
}

/// A peer that speaks IKEv1.
use peers::{Peer, Peers};

/// Certificate authentication of the peers that have it ([`Engine::set_certificates`]).
type CertMap = HashMap<PeerId, Arc<crate::v2::CertAuth>>;

/// What the exchanges hand out: datagrams and events, in order.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    /// DPD R-U-THERE requests that went unanswered (each retry counts the one before),
    /// per peer configuration, since start.
    pub(crate) liveness_misses: BTreeMap<PeerId, u64>,
}

impl Outbox {
    /// Queues `data` from `local` to `remote` (with the non-ESP marker on port 4500).
    pub(crate) fn send(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let data = if local.port() == NATT_PORT {
            let mut v = Vec::with_capacity(data.len() + 4);
            v.extend_from_slice(&[0; 4]);
            v.extend_from_slice(data);
            v
        } else {
            data.to_vec()
        };
        self.transmits.push_back(Transmit {
            local,
            remote,
            data,
        });
    }
}

/// What an exchange lends from the engine: the time, randomness, the crypto provider, the
/// retransmission policy and the outbox.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Instant,
    pub(crate) provider: &'a Provider,
    pub(crate) rng: &'a mut (dyn Rng + Send),
    pub(crate) retransmit: &'a RetransmitPolicy,
    pub(crate) out: &'a mut Outbox,
    /// As quick-mode responder, set the commit bit ([`Engine::set_commit_bit`]).
    pub(crate) commit_bit: bool,
    /// The wall-clock time (Unix seconds) at `now`, for certificate dates
    /// ([`Engine::set_wall_clock`]).
    pub(crate) unix_now: Option<u64>,
}

impl Ctx<'_> {
    pub(crate) fn random(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.rng.fill(&mut v);
        v
    }

    pub(crate) fn random_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.rng.fill(&mut b);
        u32::from_be_bytes(b)
    }

    /// A random non-zero message ID or SPI above the reserved range.
    pub(crate) fn random_id(&mut self) -> u32 {
        loop {
            let v = self.random_u32();
            if v > 255 {
                return v;
            }
        }
    }

    /// The soft (rekey) deadline of an SA made now: lifetime − margin − random(0..=jitter).
    pub(crate) fn soft(&mut self, l: &SaLifetime) -> Instant {
        let jitter_ms = u64::try_from(l.jitter.as_millis()).unwrap_or(u64::MAX);
        let r = if jitter_ms == 0 {
            0
        } else {
            u64::from(self.random_u32()) % (jitter_ms + 1)
        };
        let early = l.margin + Duration::from_millis(r);
        self.now + l.lifetime.saturating_sub(early)
    }
}

/// A phase-2 SA pair: (its ISAKMP SA, our inbound SPI, its policy).
pub type Phase2Ref = (IkeSaHandle, Spi, PolicyId);

/// The IKEv1 engine: every ISAKMP SA of the endpoint.
pub struct Engine {
    provider: Provider,
    rng: Box<dyn Rng + Send>,
    retransmit: RetransmitPolicy,
    peers: Peers,
    /// By our cookie.
    sas: table::SaTable,
    /// Responder SAs by (peer address, initiator cookie), to find retransmitted first
    /// messages.
    by_initiator: HashMap<(SocketAddr, IkeSpi), IkeSpi>,
    out: Outbox,
    /// See [`Engine::set_commit_bit`].
    commit_bit: bool,
    /// See [`Engine::set_certificates`].
    certs: CertMap,
    /// See [`Engine::set_wall_clock`].
    wall_clock: Option<(Instant, u64)>,
    unserved_count: u64,
    unserved_sources: Vec<SocketAddr>,
    unserved_last: Option<Instant>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("v1::Engine")
            .field("peers", &self.peers.len())
            .field("sas", &self.sas)
            .finish()
    }
}

/// The fixed part of an ISAKMP header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hdr {
    pub(crate) cky_i: IkeSpi,
    pub(crate) cky_r: IkeSpi,
    pub(crate) next: PayloadType,
    pub(crate) exchange: ExchangeType,
    pub(crate) flags: u8,
    pub(crate) mid: u32,
}

/// ISAKMP header length.
pub(crate) const HDR_LEN: usize = 28;

impl Hdr {
    fn parse(data: &[u8]) -> Option<Hdr> {
        let h = data.get(..HDR_LEN)?;
        let u64_at = |i: usize| u64::from_be_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
        let len = u32::from_be_bytes(h[24..28].try_into().ok()?);
        if len as usize != data.len() || h[17] >> 4 != 1 {
            return None;
        }
        Some(Hdr {
            cky_i: IkeSpi(u64_at(0)),
            cky_r: IkeSpi(u64_at(8)),
            next: PayloadType(h[16]),
            exchange: ExchangeType(h[18]),
            flags: h[19],
            mid: u32::from_be_bytes(h[20..24].try_into().ok()?),
        })
    }

    fn encrypted(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// An ISAKMP message: header and body.
pub(crate) fn message(
    cky_i: IkeSpi,
    cky_r: IkeSpi,
    exchange: ExchangeType,
    mid: u32,
    first: PayloadType,
    encrypted: bool,
    body: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(HDR_LEN + body.len());
    m.extend_from_slice(&cky_i.0.to_be_bytes());
    m.extend_from_slice(&cky_r.0.to_be_bytes());
    m.push(first.0);
    m.push(0x10);
    m.push(exchange.0);
    m.push(u8::from(encrypted));
    m.extend_from_slice(&mid.to_be_bytes());
    m.extend_from_slice(&((HDR_LEN + body.len()) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Sends a phase-1 message: in fragments when it is large, the gateway allows fragmentation
/// and the peer announced it (`frag.rs`), else whole.
pub(crate) fn transmit(out: &mut Outbox, sa: &Sa, m: &[u8]) {
    if sa.cfg.fragmentation
        && sa.peer_frag
        && let Some(parts) = frag::split(m)
    {
        for p in parts {
            out.send(sa.local, sa.remote, &p);
        }
        return;
    }
    out.send(sa.local, sa.remote, m);
}

/// A short digest of a datagram (to recognise a retransmitted request).
pub(crate) fn digest(data: &[u8]) -> Vec<u8> {
    ferrosec_crypto::HashAlgorithm::Sha256.digest(&[data])
}

impl Engine {
    /// The SA table and a context lending the rest of the engine to an exchange.
    fn split(&mut self, now: Instant) -> (&mut table::SaTable, Ctx<'_>) {
        let unix_now = self
            .wall_clock
            .map(|(at, secs)| match now.checked_duration_since(at) {
                Some(d) => secs.saturating_add(d.as_secs()),
                None => secs.saturating_sub(at.duration_since(now).as_secs()),
            });
        let ctx = Ctx {
            unix_now,
            now,
            provider: &self.provider,
            rng: &mut *self.rng,
            retransmit: &self.retransmit,
            out: &mut self.out,
            commit_bit: self.commit_bit,
        };
        (&mut self.sas, ctx)
    }

    /// An engine without peers; it only reports ISAKMP messages until peers are added.
    pub fn new(provider: Provider, rng: Box<dyn Rng + Send>) -> Self {
        Engine {
            provider,
            rng,
            retransmit: RetransmitPolicy::default(),
            peers: Peers::default(),
            sas: table::SaTable::default(),
            by_initiator: HashMap::new(),
            out: Outbox::default(),
            commit_bit: false,
            certs: HashMap::new(),
            wall_clock: None,
            unserved_count: 0,
            unserved_sources: Vec::new(),
            unserved_last: None,
        }
    }

    /// Serves `peer` (of the IKEv2 engine's peers, same ID) over IKEv1 too.
    pub fn add_peer(&mut self, id: PeerId, cfg: Arc<PeerConfig>, settings: Settings) {
        self.peers.insert(id, Peer { cfg, settings });
    }

    /// Makes `peer` authenticate with signatures and certificates (RFC 2409 §5.1, RFC 4754)
    /// instead of its pre-shared key, from the next phase 1 on; the method is the one of our
    /// certificate's key (RSA: 3, ECDSA P-256/384/521: 9/10/11). May come before the peer is
    /// served ([`Engine::add_peer`]).
    pub fn set_certificates(&mut self, peer: PeerId, auth: Arc<crate::v2::CertAuth>) {
        self.certs.insert(peer, auth);
    }

    /// The wall-clock time (`unix_secs`) at `now`: certificate dates are checked against it
    /// (the engine never reads the system clock).
    pub fn set_wall_clock(&mut self, now: Instant, unix_secs: u64) {
        self.wall_clock = Some((now, unix_secs));
    }

    /// Stops serving `peer` (a live reload removed or replaced it): each of its ISAKMP SAs
    /// is deleted with its phase-2 SAs, telling the peer (as [`Engine::delete_ike_sa`]), and
    /// its negotiations in progress are dropped. Returns how many SAs were deleted on the
    /// peer.
    pub fn remove_peer(&mut self, now: Instant, peer: PeerId) -> usize {
        let keys: Vec<IkeSpi> = self
            .sas
            .iter()
            .filter(|(_, s)| s.peer == peer)
            .map(|(k, _)| *k)
            .collect();
        let mut deleted = 0;
        for k in keys {
            let (sas, mut ctx) = self.split(now);
            if let Some(sa) = sas.get_mut(&k) {
                if sa.state == sa::P1State::Established {
                    deleted += 1;
                }
                info::delete_all(&mut ctx, sa, DownReason::LocalDelete);
            }
            self.remove(k);
        }
        self.peers.remove(&peer);
        self.certs.remove(&peer);
        deleted
    }

    /// Gives `peer` a new configuration (the same peer with other policies, see
    /// [`crate::v2::Endpoint::update_policies`]): new quick modes of its ISAKMP SAs use it.
    /// Returns the phase-2 SAs of the policies in `rekey` (rekeyed, by the caller) and of
    /// `remove` (deleted here, telling the peer): (ISAKMP SA, inbound SPI, policy).
    pub fn update_peer(
        &mut self,
        now: Instant,
        peer: PeerId,
        cfg: Arc<PeerConfig>,
        rekey: &[PolicyId],
        remove: &[PolicyId],
    ) -> (Vec<Phase2Ref>, Vec<Phase2Ref>) {
        if !self.peers.set_cfg(peer, Arc::clone(&cfg)) {
            return (Vec::new(), Vec::new());
        }
        let keys: Vec<IkeSpi> = self
            .sas
            .iter()
            .filter(|(_, s)| s.peer == peer)
            .map(|(k, _)| *k)
            .collect();
        let mut to_rekey = Vec::new();
        let mut to_delete = Vec::new();
        for k in keys {
            if let Some(sa) = self.sas.get_mut(&k) {
                sa.cfg = Arc::clone(&cfg);
                for c in sa.children.iter().filter(|c| !c.rekeying) {
                    let item = (IkeSaHandle(k), c.inbound, c.policy);
                    if rekey.contains(&c.policy) {
                        to_rekey.push(item);
                    } else if remove.contains(&c.policy) {
                        to_delete.push(item);
                    }
                }
            }
        }
        for (h, inbound, _) in &to_delete {
            let _ = self.delete_child_sa(now, *h, *inbound);
        }
        (to_rekey, to_delete)
    }

    /// Whether this peer is served over IKEv1.
    pub fn serves(&self, id: PeerId) -> bool {
        self.peers.contains_key(&id)
    }

    /// The IKEv1 settings of a peer.
    pub fn settings(&self, id: PeerId) -> Option<Settings> {
        self.peers.get(&id).map(|p| p.settings)
    }

    /// Whether `h` is an ISAKMP SA of this engine.
    pub fn has_sa(&self, h: IkeSaHandle) -> bool {
        self.sas.contains_key(&h.0)
    }

    /// The peer a responder negotiation from `remote` is for: the gateway with that peer
    /// address, else the first dynamic one.
    fn peer_for(&self, remote: SocketAddr) -> Option<PeerId> {
        self.peers.for_address(remote.ip())
    }

    fn report_unserved(&mut self, now: Instant, remote: SocketAddr) {
        self.unserved_count += 1;
        if self.unserved_sources.len() < MAX_SOURCES && !self.unserved_sources.contains(&remote) {
            self.unserved_sources.push(remote);
        }
        if self
            .unserved_last
            .is_some_and(|t| now.saturating_duration_since(t) < REPORT_INTERVAL)
        {
            return;
        }
        self.unserved_last = Some(now);
        self.out.events.push_back(Event::UnservedVersion {
            major: 1,
            count: std::mem::take(&mut self.unserved_count),
            sources: std::mem::take(&mut self.unserved_sources),
        });
    }

    /// An ISAKMP datagram (major version 1) on port 500 or 4500 (with its non-ESP marker).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        // What the last call changed is filed now, so the marked SAs stay few.
        self.sas.refresh();
        let data = if local.port() == NATT_PORT {
            match data.strip_prefix(&[0, 0, 0, 0]) {
                Some(d) => d,
                None => return,
            }
        } else {
            data
        };
        self.handle_message(now, local, remote, data, true);
    }

    /// An ISAKMP message (without the non-ESP marker); `fragments`: a fragment may come
    /// (false for a reassembled message, which is never one).
    fn handle_message(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        fragments: bool,
    ) {
        let Some(hdr) = Hdr::parse(data) else {
            return;
        };
        if hdr.next.0 == frag::FRAGMENT_PAYLOAD {
            // A fragment (unencrypted, whatever its flags say: racoon sets the bit) of a
            // message of a known SA; the whole message, once here, is handled as received.
            let Some(sa) = self.find(&hdr).and_then(|k| self.sas.get_mut(&k)) else {
                return;
            };
            if !fragments || !sa.cfg.fragmentation {
                return;
            }
            if let frag::Outcome::Complete(whole) = sa.reasm.add(&data[HDR_LEN..]) {
                self.handle_message(now, local, remote, &whole, false);
            }
            return;
        }
        let first_message = hdr.cky_r.0 == 0
            && matches!(
                hdr.exchange,
                ExchangeType::IDENTITY_PROTECTION | ExchangeType::AGGRESSIVE
            );
        let key = if first_message {
            match self.by_initiator.get(&(remote, hdr.cky_i)) {
                Some(k) => Some(*k),
                None => {
                    self.new_responder(now, local, remote, hdr, data);
                    return;
                }
            }
        } else {
            self.find(&hdr)
        };
        let Some(key) = key else {
            return;
        };
        let (sas, mut ctx) = self.split(now);
        let Some(sa) = sas.get_mut(&key) else {
            return;
        };
        // NAT-T: once IKE moved to port 4500 the peer's NAT mapping is where its messages
        // come from (RFC 3947 §4).
        if local.port() == NATT_PORT && sa.state != sa::P1State::MainR2 {
            sa.local = local;
            sa.remote = remote;
        }
        // A retransmitted request: answer with what we answered.
        if !sa.initiator && !sa.last_request.is_empty() && digest(data) == sa.last_request {
            if let Some(a) = &sa.last_answer {
                transmit(ctx.out, sa, a);
            }
            return;
        }
        let gone = match hdr.exchange {
            ExchangeType::IDENTITY_PROTECTION | ExchangeType::AGGRESSIVE => {
                phase1::handle(&mut ctx, sa, &hdr, data, remote)
            }
            ExchangeType::QUICK => {
                quick::handle(&mut ctx, sa, &hdr, data);
                false
            }
            ExchangeType::INFORMATIONAL => info::handle(&mut ctx, sa, &hdr, data),
            _ => false,
        };
        if gone {
            self.remove(key);
        } else {
            self.after_change(now, key);
        }
    }

    /// The SA a message with these cookies belongs to.
    fn find(&self, hdr: &Hdr) -> Option<IkeSpi> {
        if let Some(sa) = self.sas.get(&hdr.cky_i)
            && sa.initiator
            && (sa.cky_r == hdr.cky_r || sa.cky_r.0 == 0)
        {
            return Some(hdr.cky_i);
        }
        if let Some(sa) = self.sas.get(&hdr.cky_r)
            && !sa.initiator
            && sa.cky_i == hdr.cky_i
        {
            return Some(hdr.cky_r);
        }
        None
    }

    fn new_cookie(&mut self) -> IkeSpi {
        loop {
            let mut b = [0; 8];
            self.rng.fill(&mut b);
            let c = IkeSpi(u64::from_be_bytes(b));
            if c.0 != 0 && !self.sas.contains_key(&c) {
                return c;
            }
        }
    }

    fn new_responder(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: Hdr,
        data: &[u8],
    ) {
        let Some(peer) = self.peer_for(remote) else {
            self.report_unserved(now, remote);
            return;
        };
        let half_open = self.sas.half_open_count();
        if self.sas.len() >= MAX_SAS || half_open >= MAX_HALF_OPEN {
            return;
        }
        let Some(p) = self.peers.get(&peer).cloned() else {
            return;
        };
        let cky_r = self.new_cookie();
        let mode = if hdr.exchange == ExchangeType::AGGRESSIVE {
            Mode::Aggressive
        } else {
            Mode::Main
        };
        let cert = self.certs.get(&peer).cloned();
        let mut sa = phase1::new_sa(
            peer, p.cfg, cert, mode, false, hdr.cky_i, cky_r, local, remote, now,
        );
        sa.dpd_cfg = p.settings.dpd;
        sa.expire_at = Some(now + HALF_OPEN_TIMEOUT);
        let (_, mut ctx) = self.split(now);
        if phase1::respond_first(&mut ctx, &mut sa, &hdr, data) {
            sa.last_request = digest(data);
            self.by_initiator.insert((remote, hdr.cky_i), cky_r);
            self.sas.insert(cky_r, sa);
            self.after_change(now, cky_r);
        }
    }

    /// Work after an SA changed: lifetimes of a newly established SA, queued quick modes,
    /// adoption of an older SA's phase-2 SAs.
    fn after_change(&mut self, now: Instant, key: IkeSpi) {
        if let Some(sa) = self.sas.get_mut(&key) {
            sa.compact();
        }
        let Some(sa) = self.sas.get(&key) else {
            return;
        };
        if sa.state != sa::P1State::Established || sa.established_at.is_some() {
            self.run_pending(now, key);
            return;
        }
        let peer = sa.peer;
        let settings = self.peers.get(&peer).map(|p| p.settings);
        if !sa.initiator {
            self.by_initiator.remove(&(sa.remote, sa.cky_i));
        }
        // The peer said INITIAL-CONTACT: it restarted, and every other SA we have with it
        // is stale. They go now, without a DELETE (the peer has nothing to delete), so that
        // the data plane stops sending into SAs the peer no longer has.
        if sa.peer_initial_contact {
            let peer_id = sa.peer_id.clone();
            // Established SAs of the same peer: the same gateway and the same authenticated
            // identity (a dynamic gateway serves many peers, and SAs still negotiating belong
            // to whoever is negotiating them), from the table's index (no walk).
            let stale: Vec<IkeSpi> = match &peer_id {
                Some(id) => self
                    .sas
                    .with_identity(peer, id)
                    .into_iter()
                    .filter(|k| *k != key)
                    .collect(),
                None => Vec::new(),
            };
            for k in stale {
                let Some(mut o) = self.sas.remove(&k) else {
                    continue;
                };
                self.by_initiator.remove(&(o.remote, o.cky_i));
                let (_, mut ctx) = self.split(now);
                info::delete_all(&mut ctx, &mut o, DownReason::PeerInitialContact);
            }
        }
        let (sas, mut ctx) = self.split(now);
        let Some(sa) = sas.get_mut(&key) else {
            return;
        };
        sa.established_at = Some(now);
        sa.dpd.last_rx = Some(now);
        sa.shed_phase1();
        let ours = settings.and_then(|s| s.ike_lifetime);
        let theirs = sa
            .algs
            .as_ref()
            .and_then(|a| a.wire.life_secs)
            .map(Duration::from_secs);
        let life = match (ours, theirs) {
            (Some(o), Some(t)) if t < o.lifetime => Some(SaLifetime::new(t)),
            (Some(o), _) => Some(o),
            (None, Some(t)) => Some(SaLifetime::new(t)),
            (None, None) => None,
        };
        sa.expire_at = life.map(|l| now + l.lifetime);
        sa.rekey_at = life.filter(|_| sa.initiator).map(|l| ctx.soft(&l));
        let Some(info) = phase1::info(sa) else {
            return;
        };
        // A newer ISAKMP SA with the same peer takes over the older one's phase-2 SAs (a
        // phase-1 rekey, by either side), which then goes quietly.
        // The same gateway, the same authenticated identity and the same address: on a
        // dynamic gateway another site is not a rekey of this one.
        let (new_id, new_ip) = sas
            .get(&key)
            .map(|s| (s.peer_id.clone(), s.remote.ip()))
            .unzip();
        let (new_id, new_ip) = (new_id.flatten(), new_ip);
        let takes_over = |k: &IkeSpi, o: &sa::Sa| {
            *k != key
                && o.peer == peer
                && o.state == sa::P1State::Established
                && !o.replaced
                && o.peer_id == new_id
                && (o.cfg.peer_addr.is_some() || Some(o.remote.ip()) == new_ip)
        };
        // The established SAs of this gateway and identity come from the table's index, in
        // SPI order, as a walk over every SA would find them (a walk per new SA made
        // thousands of SAs quadratic).
        let old = match &new_id {
            Some(id) => sas
                .with_identity(peer, id)
                .into_iter()
                .find(|k| sas.get(k).is_some_and(|o| takes_over(k, o))),
            None => sas.iter().find(|(k, o)| takes_over(k, o)).map(|(k, _)| *k),
        };
        let me_initiator = sas.get(&key).is_some_and(|s| s.initiator);
        match old {
            Some(old_key) => {
                let mut moved = Vec::new();
                if let Some(o) = sas.get_mut(&old_key) {
                    o.replaced = true;
                    moved = std::mem::take(&mut o.children);
                    // Delete the old one on the peer once the new one is up (we started
                    // the rekey), else let the peer delete it.
                    if o.initiator && me_initiator {
                        o.expire_at = Some(now + Duration::from_secs(1));
                    } else {
                        o.expire_at = Some(now + Duration::from_secs(60));
                    }
                }
                if let Some(sa) = sas.get_mut(&key) {
                    sa.children.extend(moved);
                }
                ctx.out.events.push_back(Event::IkeSaRekeyed {
                    old: IkeSaHandle(old_key),
                    new: info,
                });
            }
            None => ctx.out.events.push_back(Event::IkeSaUp(info)),
        }
        self.run_pending(now, key);
    }

    /// Starts the queued quick modes of an established SA.
    fn run_pending(&mut self, now: Instant, key: IkeSpi) {
        let (sas, mut ctx) = self.split(now);
        let Some(sa) = sas.get_mut(&key) else {
            return;
        };
        if sa.state != sa::P1State::Established || sa.replaced {
            return;
        }
        for (policy, rekey_of) in std::mem::take(&mut sa.pending) {
            quick::initiate(&mut ctx, sa, policy, rekey_of);
        }
    }

    fn remove(&mut self, key: IkeSpi) {
        if let Some(sa) = self.sas.remove(&key) {
            self.by_initiator.remove(&(sa.remote, sa.cky_i));
        }
    }

    /// Timers: retransmissions, DPD, lifetimes of both phases.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = self.sas.due(now);
        for key in due {
            let (sas, mut ctx) = self.split(now);
            let Some(sa) = sas.get_mut(&key) else {
                continue;
            };
            match info::timeout(&mut ctx, sa) {
                info::TimerOutcome::Keep => self.run_pending(now, key),
                info::TimerOutcome::Gone => self.remove(key),
                info::TimerOutcome::Rekey => {
                    let (peer, local, remote) = (sa.peer, sa.local, sa.remote);
                    // A peer configuration that fails now failed at the first start too.
                    let _ = self.start_phase1(now, peer, local, remote, false);
                }
                info::TimerOutcome::Restart => {
                    let (peer, mut local, mut remote) = (sa.peer, sa.local, sa.remote);
                    // Restarted at the configured address (as IKEv2 does): an FQDN peer whose
                    // name now resolves elsewhere (R-CFG-4) is followed there, from port 500.
                    if let Some(addr) = self.peers.get(&peer).and_then(|p| p.cfg.peer_addr)
                        && addr != remote.ip()
                    {
                        local = SocketAddr::new(local.ip(), crate::v2::IKE_PORT);
                        remote = SocketAddr::new(addr, crate::v2::IKE_PORT);
                    }
                    self.remove(key);
                    let _ = self.initiate(now, peer, local, remote);
                }
            }
        }
    }

    /// When [`Engine::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.next_deadline()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// Starts phase 1 with `peer`; its policies' quick modes follow once it is up.
    pub fn initiate(
        &mut self,
        now: Instant,
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaHandle, CommandError> {
        self.start_phase1(now, peer, local, remote, true)
    }

    /// Phase 1; with `children`, every policy's quick mode once it is up (else it is a
    /// rekey: the new SA takes over the old one's pairs).
    fn start_phase1(
        &mut self,
        now: Instant,
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
        children: bool,
    ) -> Result<IkeSaHandle, CommandError> {
        let p = self
            .peers
            .get(&peer)
            .ok_or(CommandError::NoSuchPeer)?
            .clone();
        let cky_i = self.new_cookie();
        let mut sa = phase1::new_sa(
            peer,
            Arc::clone(&p.cfg),
            self.certs.get(&peer).cloned(),
            p.settings.mode,
            true,
            cky_i,
            IkeSpi(0),
            local,
            remote,
            now,
        );
        sa.dpd_cfg = p.settings.dpd;
        sa.first_contact = !self
            .sas
            .values()
            .any(|o| o.peer == peer && o.state == sa::P1State::Established && !o.replaced);
        if children {
            sa.pending = p.cfg.policies.iter().map(|pol| (pol.id(), None)).collect();
        }
        let (_, mut ctx) = self.split(now);
        phase1::start(&mut ctx, &mut sa, p.settings.ike_lifetime)?;
        self.sas.insert(cky_i, sa);
        Ok(IkeSaHandle(cky_i))
    }

    /// Brings up `policy` under the ISAKMP SA `h` (a no-op when its pair is up or being
    /// negotiated).
    pub fn create_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        policy: PolicyId,
    ) -> Result<(), CommandError> {
        let sa = self.sas.get_mut(&h.0).ok_or(CommandError::NoSuchSa)?;
        if sa.cfg.policy(policy).is_none() {
            return Err(CommandError::Config(format!("no {policy} on this gateway")));
        }
        let busy = sa.children.iter().any(|c| c.policy == policy)
            || sa.qms.iter().any(|q| q.policy == policy)
            || sa.pending.iter().any(|(p, _)| *p == policy);
        if !busy {
            sa.pending.push((policy, None));
        }
        self.run_pending(now, h.0);
        Ok(())
    }

    /// Rekeys the pair with inbound SPI `inbound` (make-before-break).
    pub fn rekey_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        inbound: Spi,
    ) -> Result<(), CommandError> {
        let sa = self.sas.get_mut(&h.0).ok_or(CommandError::NoSuchSa)?;
        let c = sa
            .children
            .iter_mut()
            .find(|c| c.inbound == inbound)
            .ok_or(CommandError::NoSuchSa)?;
        if c.rekeying {
            return Err(CommandError::Busy);
        }
        c.rekeying = true;
        let policy = c.policy;
        sa.pending.push((policy, Some(inbound)));
        self.run_pending(now, h.0);
        Ok(())
    }

    /// Rekeys the ISAKMP SA: a new phase 1 takes over its phase-2 SAs, then it is deleted.
    pub fn rekey_ike_sa(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        let sa = self.sas.get(&h.0).ok_or(CommandError::NoSuchSa)?;
        if sa.state != sa::P1State::Established {
            return Err(CommandError::Busy);
        }
        let (peer, local, remote) = (sa.peer, sa.local, sa.remote);
        self.start_phase1(now, peer, local, remote, false)
            .map(|_| ())
    }

    /// Deletes the ISAKMP SA `h` and its phase-2 SAs, telling the peer.
    pub fn delete_ike_sa(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        let (sas, mut ctx) = self.split(now);
        let sa = sas.get_mut(&h.0).ok_or(CommandError::NoSuchSa)?;
        info::delete_all(&mut ctx, sa, DownReason::LocalDelete);
        self.remove(h.0);
        Ok(())
    }

    /// Deletes one phase-2 pair, telling the peer.
    pub fn delete_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        inbound: Spi,
    ) -> Result<(), CommandError> {
        let (sas, mut ctx) = self.split(now);
        let sa = sas.get_mut(&h.0).ok_or(CommandError::NoSuchSa)?;
        if info::delete_child(&mut ctx, sa, inbound, DownReason::LocalDelete) {
            Ok(())
        } else {
            Err(CommandError::NoSuchSa)
        }
    }

    /// The initiator cookie and encryption key of every established phase-1 SA, for
    /// Wireshark's IKEv1 decryption table (only when the operator allowed key export).
    pub fn export_ike_keys(&self) -> Vec<crate::export::IkeKeyExport> {
        self.sas
            .values()
            .filter(|sa| sa.state == sa::P1State::Established)
            .filter_map(|sa| {
                Some(crate::export::IkeKeyExport::V1 {
                    cookie_i: sa.cky_i,
                    enc_key: sa.keys.as_ref()?.enc.clone(),
                })
            })
            .collect()
    }

    /// Unanswered DPD requests per peer configuration since start.
    pub fn liveness_misses(&self) -> &BTreeMap<PeerId, u64> {
        &self.out.liveness_misses
    }

    /// Checks the SA table's deadline queue and half-open count against a walk.
    #[cfg(test)]
    pub(crate) fn assert_tables_consistent(&mut self) {
        self.sas.assert_consistent();
    }

    /// Established ISAKMP SAs.
    pub fn established(&self) -> Vec<IkeSaHandle> {
        self.sas
            .iter()
            .filter(|(_, s)| s.state == sa::P1State::Established && !s.replaced)
            .map(|(k, _)| IkeSaHandle(*k))
            .collect()
    }

    /// Whether a phase 1 with `peer` is being negotiated.
    pub fn negotiating(&self, peer: PeerId) -> bool {
        self.sas
            .values()
            .any(|s| s.peer == peer && s.state != sa::P1State::Established)
    }

    /// ESP arrived on a phase-2 SA of ISAKMP SA `h`: the peer is alive, so DPD's R-U-THERE
    /// waits for a full interval of idleness from now (RFC 3706 §5.5: only when there is no
    /// traffic). Unknown handles are ignored.
    pub fn traffic_seen(&mut self, now: Instant, h: IkeSaHandle) {
        if let Some(sa) = self.sas.get_mut(&h.0)
            && sa.state == sa::P1State::Established
        {
            sa.dpd.last_rx = Some(sa.dpd.last_rx.map_or(now, |t| t.max(now)));
            sa.dpd.outstanding = None;
        }
    }

    /// As quick-mode responder, set the commit bit (RFC 2408 §3.1) in message 2 and send
    /// CONNECTED in a fourth message once HASH(3) came, as some old IKEv1 implementations
    /// do. Off by default (strongSwan and Libreswan never set it); as initiator we always
    /// honour a peer's commit bit and wait for its CONNECTED before sending on the pair.
    pub fn set_commit_bit(&mut self, on: bool) {
        self.commit_bit = on;
    }

    /// Whether an ISAKMP SA with `peer` exists, negotiating or established.
    pub fn has_peer_sa(&self, peer: PeerId) -> bool {
        self.sas.values().any(|s| s.peer == peer && !s.replaced)
    }

    /// Bytes of phase-1 material the established ISAKMP SAs still hold (none once shed).
    #[cfg(test)]
    pub(crate) fn phase1_material_of_established(&self) -> usize {
        self.sas
            .iter()
            .filter(|(_, sa)| sa.state == sa::P1State::Established)
            .map(|(_, sa)| sa.phase1_material())
            .sum()
    }

    /// Quick-mode slots and spare phase-2 slots the established ISAKMP SAs hold with no
    /// quick mode in flight (none once compacted).
    #[cfg(test)]
    pub(crate) fn spare_slots_of_established(&self) -> usize {
        self.sas
            .iter()
            .filter(|(_, sa)| sa.state == sa::P1State::Established && sa.qms.is_empty())
            .map(|(_, sa)| sa.qms.capacity() + sa.children.capacity() - sa.children.len())
            .sum()
    }

    /// ISAKMP SAs of every state.
    pub fn sa_count(&self) -> usize {
        self.sas.len()
    }

    /// The mode of an ISAKMP SA, for `show`.
    pub fn mode(&self, h: IkeSaHandle) -> Option<Mode> {
        self.sas.get(&h.0).map(|s| s.mode)
    }
}

/// The IKE SA info of an established ISAKMP SA (for events).
pub(crate) fn sa_info(sa: &Sa) -> Option<IkeSaInfo> {
    let algs = sa.algs.as_ref()?;
    Some(IkeSaInfo {
        handle: IkeSaHandle(sa.our_cookie()),
        peer: sa.cfg.name.clone(),
        initiator: sa.initiator,
        spi_i: sa.cky_i,
        spi_r: sa.cky_r,
        proposal: algs.selected.clone(),
        local: sa.local,
        remote: sa.remote,
        peer_id: sa.peer_id.clone()?,
        nat: sa.nat,
        reauth: None,
        reauth_at: None,
        auth: match &sa.cert {
            None => crate::event::AuthInfo::psk(),
            Some(c) => {
                let m = certs::as_v2_method(sa.auth_method);
                crate::v2::certauth::auth_info(Some(c), m, m, sa.peer_cert.as_ref())
            }
        },
        // IKEv1 mode-config is not built.
        config: None,
    })
}
