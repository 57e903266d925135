//! The one IKE type the daemon owns ([`Ike`]): it routes each datagram to the IKEv1 or
//! IKEv2 engine by the header's major version, merges what they emit, and is the one command
//! surface: a command naming an IKE SA goes to the engine that holds it (handles are our
//! random SPIs/cookies, drawn by each engine; a command finds the one engine that has it), a
//! command naming a peer goes to IKEv1 when the peer is served over IKEv1
//! ([`Ike::serve_ikev1`]).
//!
//! `ikev2-preferred` peers ([`Ike::serve_ikev2_preferred`]) are answered in whichever
//! version they start, and initiated with IKEv2 first: when IKE_SA_INIT fails (a peer
//! without IKEv2 answers NO_PROPOSAL_CHOSEN, as strongSwan does, or INVALID_MAJOR_VERSION),
//! is answered with an IKEv1 message, or goes unanswered for [`FALLBACK_AFTER`], the IKEv2
//! attempt is dropped without a word to the peer and IKEv1 starts in its place
//! ([`Event::VersionFallback`]). A failure after IKE_SA_INIT (authentication, IDs, traffic
//! selectors) means the peer speaks IKEv2, and does not fall back. Every new initiation
//! tries IKEv2 again, as PAN-OS does; the IKEv1 SA's own rekeys and dead-peer restarts stay
//! IKEv1.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrosec_wire::{IkeSpi, Spi};

use crate::Transmit;
use crate::event::{Exchange, FallbackReason};
use crate::halfopen::HalfOpenStats;
use crate::v2::{
    self, CommandError, Event, IkeSaHandle, Lifetimes, PeerConfig, PeerId, PolicyId, TombstoneStats,
};

/// How long an `ikev2-preferred` initiation waits for any answer to IKE_SA_INIT before it
/// gives way to IKEv1: the original request and two retransmissions (at 4 s and 11.2 s with
/// the default policy) go unanswered.
pub const FALLBACK_AFTER: Duration = Duration::from_secs(15);

/// An IKEv2 initiation of an `ikev2-preferred` peer that has not had its IKE_SA_INIT
/// answer yet.
#[derive(Debug, Clone, Copy)]
struct Trying {
    peer: PeerId,
    local: SocketAddr,
    remote: SocketAddr,
    deadline: Instant,
}

/// Every IKE SA of a gateway, both versions.
pub struct Ike {
    v1: crate::v1::Engine,
    v2: v2::Endpoint,
    /// `ikev2-preferred` peers.
    preferred: BTreeSet<PeerId>,
    /// Their IKEv2 initiations still in IKE_SA_INIT, by handle (bounded by the peers: one
    /// initiation per command).
    trying: HashMap<IkeSaHandle, Trying>,
    /// Events taken from IKEv2 while `trying` is not empty (a failure of a tried
    /// initiation is replaced by a fallback), in order; drained before the engines' own.
    events: VecDeque<Event>,
}

impl std::fmt::Debug for Ike {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ike")
            .field("v1", &self.v1)
            .field("v2", &self.v2)
            .finish()
    }
}

/// The major version of an IKE datagram (after the non-ESP marker on port 4500), if it is
/// long enough to have one.
fn major_version(local: SocketAddr, data: &[u8]) -> Option<u8> {
    let data = if local.port() == v2::NATT_PORT {
        data.strip_prefix(&[0, 0, 0, 0])?
    } else {
        data
    };
    data.get(17).map(|v| v >> 4)
}

impl Ike {
    /// Both engines. IKEv1 serves no peer until [`Ike::serve_ikev1`] names one.
    pub fn new(v2: v2::Endpoint, v1: crate::v1::Engine) -> Self {
        Ike {
            v1,
            v2,
            preferred: BTreeSet::new(),
            trying: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Serves `peer` over IKEv1 (RFC 2409) with these settings: we initiate with IKEv1 and
    /// answer it. The peer keeps its ID and configuration.
    pub fn serve_ikev1(
        &mut self,
        peer: PeerId,
        settings: crate::v1::Settings,
    ) -> Result<(), CommandError> {
        let cfg = self.v2.peers.get(&peer).ok_or(CommandError::NoSuchPeer)?;
        self.v1.add_peer(peer, std::sync::Arc::clone(cfg), settings);
        self.v2.refuse_ikev2(peer);
        self.preferred.remove(&peer);
        Ok(())
    }

    /// Serves `peer` as `ikev2-preferred`: both versions are answered; we initiate with
    /// IKEv2 and fall back to IKEv1 with these settings (see the module docs).
    pub fn serve_ikev2_preferred(
        &mut self,
        peer: PeerId,
        settings: crate::v1::Settings,
    ) -> Result<(), CommandError> {
        let cfg = self.v2.peers.get(&peer).ok_or(CommandError::NoSuchPeer)?;
        self.v1.add_peer(peer, std::sync::Arc::clone(cfg), settings);
        self.preferred.insert(peer);
        Ok(())
    }

    /// The IKEv1 mode a negotiation with `peer` starts in; `None` when it starts with
    /// IKEv2 (IKEv2 peers and `ikev2-preferred` ones).
    pub fn starts_with_ikev1(&self, peer: PeerId) -> Option<crate::v1::Mode> {
        if self.preferred.contains(&peer) {
            return None;
        }
        self.v1.settings(peer).map(|s| s.mode)
    }

    /// After IKEv2 ran: while an `ikev2-preferred` initiation waits, its events are taken
    /// here and a failure of its IKE_SA_INIT becomes a fallback to IKEv1.
    fn after_v2(&mut self, now: Instant) {
        if self.trying.is_empty() {
            return;
        }
        while let Some(e) = self.v2.poll_event() {
            match e {
                Event::Failed {
                    handle: Some(h),
                    exchange: Exchange::V2(ferrosec_wire::ikev2::ExchangeType::IKE_SA_INIT),
                    reason,
                    ..
                } if self.trying.contains_key(&h) => {
                    let t = self.trying.remove(&h).expect("checked");
                    self.fall_back(now, h, t, FallbackReason::Failed(reason));
                }
                e => {
                    if let Event::IkeSaUp(i) = &e {
                        self.trying.remove(&i.handle);
                    }
                    if let Event::Failed {
                        handle: Some(h), ..
                    } = &e
                    {
                        self.trying.remove(h);
                    }
                    self.events.push_back(e);
                }
            }
        }
    }

    /// Starts IKEv1 in place of the IKEv2 initiation `from` (gone already), unless an
    /// ISAKMP SA with the peer exists (the peer started one).
    fn fall_back(&mut self, now: Instant, from: IkeSaHandle, t: Trying, why: FallbackReason) {
        let name = self
            .v2
            .peer(t.peer)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let to = if self.v1.has_peer_sa(t.peer) {
            None
        } else {
            match self.v1.initiate(now, t.peer, t.local, t.remote) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.events.push_back(Event::Failed {
                        handle: None,
                        peer: name,
                        exchange: Exchange::V1(
                            ferrosec_wire::isakmp::ExchangeType::IDENTITY_PROTECTION,
                        ),
                        ike_sa_survives: false,
                        reason: crate::event::Failure::Local(
                            crate::event::LocalError::FallbackStart(e.to_string()),
                        ),
                    });
                    return;
                }
            }
        };
        self.events.push_back(Event::VersionFallback {
            peer: name,
            from,
            to,
            why,
        });
    }

    /// `ikev2-preferred` initiations whose IKE_SA_INIT went unanswered for
    /// [`FALLBACK_AFTER`]: IKEv1 in their place.
    fn fallback_timers(&mut self, now: Instant) {
        let due: Vec<IkeSaHandle> = self
            .trying
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(h, _)| *h)
            .collect();
        for h in due {
            let t = self.trying.remove(&h).expect("listed");
            match self.v2.abandon_init(h) {
                Some(None) => self.fall_back(now, h, t, FallbackReason::NoAnswer(FALLBACK_AFTER)),
                Some(Some(notify)) => self.fall_back(
                    now,
                    h,
                    t,
                    FallbackReason::Failed(crate::event::Failure::PeerRefused { notify }),
                ),
                // Answered (IKE_AUTH runs: the peer speaks IKEv2) or gone.
                None => {}
            }
        }
    }

    /// An ISAKMP message from the peer of an `ikev2-preferred` initiation that answers our
    /// IKE_SA_INIT (its initiator cookie is our IKEv2 SPI: an RFC 2408 notify such as
    /// INVALID-MAJOR-VERSION): IKEv1 in its place. Returns whether it was one.
    fn ikev1_answer(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> bool {
        let data = if local.port() == v2::NATT_PORT {
            data.get(4..).unwrap_or_default()
        } else {
            data
        };
        let Some(cky) = data.get(..8) else {
            return false;
        };
        let h = IkeSaHandle(IkeSpi(u64::from_be_bytes(cky.try_into().expect("8 bytes"))));
        let Some(t) = self.trying.get(&h).copied() else {
            return false;
        };
        if t.remote.ip() != remote.ip() || self.v2.abandon_init(h).is_none() {
            return false;
        }
        self.trying.remove(&h);
        self.fall_back(now, h, t, FallbackReason::Ikev1Answer);
        true
    }

    /// See [`crate::v1::Engine::set_commit_bit`].
    pub fn set_ikev1_commit_bit(&mut self, on: bool) {
        self.v1.set_commit_bit(on);
    }

    /// The IKEv1 engine (for `show` and tests).
    pub fn v1(&self) -> &crate::v1::Engine {
        &self.v1
    }

    /// The IKEv2 engine (for what has no version-neutral command yet, and tests).
    pub fn v2(&self) -> &v2::Endpoint {
        &self.v2
    }

    /// Handles a UDP datagram on port 500 or 4500: ISAKMP (major version 1) to the IKEv1
    /// engine, everything else to IKEv2 (which answers a higher version as RFC 7296 §2.5
    /// says).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        if major_version(local, data) == Some(1) {
            if self.trying.is_empty() || !self.ikev1_answer(now, local, remote, data) {
                self.v1.handle_datagram(now, local, remote, data);
            }
        } else {
            self.v2.handle_datagram(now, local, remote, data);
            self.after_v2(now);
        }
    }

    /// Timers of both engines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.v1.poll_timeout().is_some_and(|t| t <= now) {
            self.v1.handle_timeout(now);
        }
        if self.v2.poll_timeout().is_some_and(|t| t <= now) {
            self.v2.handle_timeout(now);
            self.after_v2(now);
        }
        self.fallback_timers(now);
    }

    /// When [`Ike::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.v1.poll_timeout(),
            self.v2.poll_timeout(),
            self.trying.values().map(|t| t.deadline).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.v1.poll_transmit().or_else(|| self.v2.poll_transmit())
    }

    /// The next event, of either engine; drain after every call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events
            .pop_front()
            .or_else(|| self.v1.poll_event())
            .or_else(|| self.v2.poll_event())
    }

    /// See [`v2::Endpoint::initiate`].
    pub fn initiate(
        &mut self,
        now: Instant,
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaHandle, CommandError> {
        if self.preferred.contains(&peer) {
            let h = self.v2.initiate(now, peer, local, remote)?;
            self.trying.insert(
                h,
                Trying {
                    peer,
                    local,
                    remote,
                    deadline: now + FALLBACK_AFTER,
                },
            );
            return Ok(h);
        }
        if self.v1.serves(peer) {
            return self.v1.initiate(now, peer, local, remote);
        }
        self.v2.initiate(now, peer, local, remote)
    }

    /// See [`v2::Endpoint::delete_ike_sa`].
    pub fn delete_ike_sa(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        if self.v1.has_sa(h) {
            return self.v1.delete_ike_sa(now, h);
        }
        self.v2.delete_ike_sa(now, h)
    }

    /// See [`v2::Endpoint::create_child_sa`].
    pub fn create_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        policy: PolicyId,
    ) -> Result<(), CommandError> {
        if self.v1.has_sa(h) {
            return self.v1.create_child_sa(now, h, policy);
        }
        self.v2.create_child_sa(now, h, policy)
    }

    /// See [`v2::Endpoint::rekey_child_sa`].
    pub fn rekey_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        inbound: Spi,
    ) -> Result<(), CommandError> {
        if self.v1.has_sa(h) {
            return self.v1.rekey_child_sa(now, h, inbound);
        }
        self.v2.rekey_child_sa(now, h, inbound)
    }

    /// See [`v2::Endpoint::rekey_ike_sa`].
    pub fn rekey_ike_sa(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        if self.v1.has_sa(h) {
            return self.v1.rekey_ike_sa(now, h);
        }
        self.v2.rekey_ike_sa(now, h)
    }

    /// See [`v2::Endpoint::delete_child_sa`].
    pub fn delete_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        inbound: Spi,
    ) -> Result<(), CommandError> {
        if self.v1.has_sa(h) {
            return self.v1.delete_child_sa(now, h, inbound);
        }
        self.v2.delete_child_sa(now, h, inbound)
    }

    /// ESP or AH arrived on a Child SA of IKE SA `h`: liveness checks (IKEv2) and DPD
    /// (IKEv1) wait for a full interval of silence from now. The daemon calls it when an SA's
    /// inbound counters moved (once a second at most per IKE SA).
    pub fn traffic_seen(&mut self, now: Instant, h: IkeSaHandle) {
        if self.v1.has_sa(h) {
            self.v1.traffic_seen(now, h);
        } else {
            self.v2.traffic_seen(now, h);
        }
    }

    /// See [`v2::Endpoint::report_invalid_spi`].
    pub fn report_invalid_spi(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        spi: Spi,
    ) -> Result<(), CommandError> {
        if self.v1.has_sa(h) {
            // IKEv1 has no protected INVALID_SPI answer here yet; the data plane's count shows it.
            return Ok(());
        }
        self.v2.report_invalid_spi(now, h, spi)
    }

    /// Adds a peer configuration (see [`v2::Endpoint::add_peer`]): a new ID, served over
    /// IKEv2 until [`Ike::serve_ikev1`] or [`Ike::serve_ikev2_preferred`] says otherwise.
    pub fn add_peer(&mut self, cfg: PeerConfig) -> PeerId {
        self.v2.add_peer(cfg)
    }

    /// Removes a peer configuration from both engines: its IKE SAs of either version are
    /// deleted on the peer and here (see [`v2::Endpoint::remove_peer`]). Returns how many.
    pub fn remove_peer(&mut self, now: Instant, peer: PeerId) -> Result<usize, CommandError> {
        let v1 = self.v1.remove_peer(now, peer);
        let v2 = self.v2.remove_peer(now, peer)?;
        self.preferred.remove(&peer);
        self.trying.retain(|_, t| t.peer != peer);
        Ok(v1 + v2)
    }

    /// Replaces a peer's policies in both engines, keeping its IKE SAs (see
    /// [`v2::Endpoint::update_policies`]); the Child SAs of IKEv1 are rekeyed and deleted
    /// alike, and counted in the same [`v2::PolicyUpdate`].
    pub fn update_policies(
        &mut self,
        now: Instant,
        peer: PeerId,
        policies: Vec<v2::ChildPolicy>,
    ) -> Result<v2::PolicyUpdate, CommandError> {
        let mut update = self.v2.update_policies(now, peer, policies)?;
        if self.v1.serves(peer)
            && let Some(cfg) = self.v2.peer_arc(peer)
        {
            let rekey: Vec<PolicyId> = update.rekeyed.iter().map(|(p, _)| *p).collect();
            let remove: Vec<PolicyId> = update.removed.iter().map(|(p, _)| *p).collect();
            let (to_rekey, deleted) = self.v1.update_peer(now, peer, cfg, &rekey, &remove);
            for (h, inbound, policy) in to_rekey {
                if self.v1.rekey_child_sa(now, h, inbound).is_ok()
                    && let Some(n) = update.rekeyed.iter_mut().find(|(p, _)| *p == policy)
                {
                    n.1 += 1;
                }
            }
            for (_, _, policy) in deleted {
                if let Some(n) = update.removed.iter_mut().find(|(p, _)| *p == policy) {
                    n.1 += 1;
                }
            }
        }
        Ok(update)
    }

    /// Points a peer at a new address in both engines (see
    /// [`v2::Endpoint::set_peer_address`]); returns the address it had.
    pub fn set_peer_address(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: Option<std::net::IpAddr>,
    ) -> Result<Option<std::net::IpAddr>, CommandError> {
        let old = self.v2.set_peer_address(peer, addr)?;
        if self.v1.serves(peer)
            && let Some(cfg) = self.v2.peer_arc(peer)
        {
            self.v1.update_peer(now, peer, cfg, &[], &[]);
        }
        Ok(old)
    }

    /// See [`v2::Endpoint::set_lifetimes`].
    pub fn set_lifetimes(&mut self, peer: PeerId, l: Lifetimes) -> Result<(), CommandError> {
        self.v2.set_lifetimes(peer, l)
    }

    /// See [`v2::Endpoint::set_certificates`].
    pub fn set_certificates(
        &mut self,
        peer: PeerId,
        auth: v2::CertAuth,
    ) -> Result<(), CommandError> {
        let auth = std::sync::Arc::new(auth);
        self.v2.set_certificates(peer, (*auth).clone())?;
        // IKEv1 signs with the same credentials (RFC 2409 §5.1), whenever it serves the peer.
        self.v1.set_certificates(peer, auth);
        Ok(())
    }

    /// See [`v2::Endpoint::set_config_payload`] (IKEv2 only: IKEv1 mode-config is not built).
    pub fn set_config_payload(
        &mut self,
        peer: PeerId,
        cp: v2::ConfigPayload,
    ) -> Result<(), CommandError> {
        self.v2.set_config_payload(peer, cp)
    }

    /// See [`v2::Endpoint::address_leases`].
    pub fn address_leases(&self, peer: PeerId) -> Vec<(std::net::IpAddr, v2::Identity, u32)> {
        self.v2.address_leases(peer)
    }

    /// See [`v2::Endpoint::set_wall_clock`].
    pub fn set_wall_clock(&mut self, now: Instant, unix_secs: u64) {
        self.v2.set_wall_clock(now, unix_secs);
        self.v1.set_wall_clock(now, unix_secs);
    }

    /// See [`v2::Endpoint::set_dh_cost`].
    pub fn set_dh_cost(&mut self, group: u16, cost: Duration) {
        self.v2.set_dh_cost(group, cost);
    }

    /// See [`v2::Endpoint::peers`].
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &PeerConfig)> {
        self.v2.peers()
    }

    /// See [`v2::Endpoint::certificate_fetched`] (hash-and-URL is IKEv2 only).
    pub fn certificate_fetched(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        url: &str,
        result: Result<Vec<u8>, String>,
    ) {
        self.v2.certificate_fetched(now, h, url, result);
    }

    /// See [`v2::Endpoint::crl_fetched`] (CRL distribution points are fetched over IKEv2).
    pub fn crl_fetched(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        url: &str,
        result: Result<Vec<u8>, String>,
    ) -> Result<ferrosec_crypto::crl::Crl, String> {
        self.v2.crl_fetched(now, h, url, result)
    }

    /// See [`v2::Endpoint::fetched_crls`].
    pub fn fetched_crls(&self) -> Vec<(String, ferrosec_crypto::crl::Crl)> {
        self.v2.fetched_crls()
    }

    /// The keys of every established IKE SA of both versions (Wireshark key export).
    pub fn export_ike_keys(&self) -> Vec<crate::export::IkeKeyExport> {
        let mut v = self.v2.export_ike_keys();
        v.extend(self.v1.export_ike_keys());
        v
    }

    /// The IKEv1 engine, for tests that look inside it.
    #[cfg(test)]
    pub(crate) fn v1_mut(&mut self) -> &mut crate::v1::Engine {
        &mut self.v1
    }

    /// See [`v2::Endpoint::established`].
    pub fn established(&self) -> Vec<IkeSaHandle> {
        let mut v = self.v2.established();
        v.extend(self.v1.established());
        v
    }

    /// See [`v2::Endpoint::negotiating`].
    pub fn negotiating(&self, peer: PeerId) -> bool {
        self.v2.negotiating(peer) || self.v1.negotiating(peer)
    }

    /// IKE SAs of both versions.
    pub fn ike_sa_count(&self) -> usize {
        self.v2.ike_sa_count() + self.v1.sa_count()
    }

    /// Liveness checks (IKEv2) and DPD requests (IKEv1) that went unanswered since start:
    /// (peer configuration, version, count).
    pub fn liveness_misses(&self) -> Vec<(PeerId, &'static str, u64)> {
        let v2 = self
            .v2
            .liveness_misses()
            .iter()
            .map(|(p, n)| (*p, "ikev2", *n));
        let v1 = self
            .v1
            .liveness_misses()
            .iter()
            .map(|(p, n)| (*p, "ikev1", *n));
        v2.chain(v1).collect()
    }

    /// See [`v2::Endpoint::half_open_count`].
    pub fn half_open_count(&self) -> usize {
        self.v2.half_open_count()
    }

    /// See [`v2::Endpoint::half_open_stats`].
    pub fn half_open_stats(&self) -> HalfOpenStats {
        self.v2.half_open_stats()
    }

    /// See [`v2::Endpoint::half_open_limits`].
    pub fn half_open_limits(&self) -> (usize, usize, usize) {
        self.v2.half_open_limits()
    }

    /// See [`v2::Endpoint::tombstone_count`].
    pub fn tombstone_count(&self) -> usize {
        self.v2.tombstone_count()
    }

    /// See [`v2::Endpoint::tombstone_stats`].
    pub fn tombstone_stats(&self) -> TombstoneStats {
        self.v2.tombstone_stats()
    }
}

#[cfg(any(test, feature = "sim"))]
impl crate::sim::SimEndpoint for Ike {
    type Event = Event;

    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        Ike::handle_datagram(self, now, local, remote, data);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Ike::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        Ike::poll_transmit(self)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        Ike::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Ike::poll_event(self)
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::sim::epoch;

    fn ike() -> Ike {
        Ike::new(
            v2::Endpoint::new(
                v2::EndpointConfig::default(),
                Vec::new(),
                ferrosec_crypto::Provider::default(),
                Box::new(ChaCha8Rng::seed_from_u64(1)),
                epoch(),
            ),
            crate::v1::Engine::new(
                ferrosec_crypto::Provider::default(),
                Box::new(ChaCha8Rng::seed_from_u64(2)),
            ),
        )
    }

    fn isakmp(i: u8) -> Vec<u8> {
        let mut m = vec![i; 8];
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[1, 0x10, 2, 0]); // SA next, version 1.0, main mode, no flags
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(&28u32.to_be_bytes());
        m
    }

    fn unserved(ike: &mut Ike) -> Vec<(u8, u64, usize)> {
        let mut v = Vec::new();
        while let Some(e) = ike.poll_event() {
            if let Event::UnservedVersion {
                major,
                count,
                sources,
            } = e
            {
                v.push((major, count, sources.len()));
            }
        }
        v
    }

    /// ISAKMP (IKEv1) main mode requests from addresses without an IKEv1 gateway, on port 500
    /// and (with the non-ESP marker) 4500: dropped without an answer and reported: the first at once, then one summary per 10 s
    /// with the sources (at most 8), never one event per message.
    #[test]
    fn ikev1_messages_go_to_the_v1_engine_and_are_reported_not_answered() {
        let mut ike = ike();
        let now = epoch();
        let local: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let natt: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        for i in 0..100u8 {
            let from = SocketAddr::new(
                std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i)),
                500,
            );
            if i % 2 == 0 {
                ike.handle_datagram(now, local, from, &isakmp(i));
            } else {
                let mut m = vec![0, 0, 0, 0];
                m.extend(isakmp(i));
                ike.handle_datagram(now, natt, from, &m);
            }
        }
        assert!(ike.poll_transmit().is_none(), "no answer to IKEv1");
        assert_eq!(
            unserved(&mut ike),
            [(1, 1, 1)],
            "the first at once, the rest held"
        );
        let later = now + Duration::from_secs(10);
        ike.handle_datagram(later, local, "192.0.2.77:500".parse().unwrap(), &isakmp(7));
        assert_eq!(
            unserved(&mut ike),
            [(1, 100, 8)],
            "one summary, bounded sources"
        );
    }

    /// A higher major version still goes to IKEv2, which answers INVALID_MAJOR_VERSION.
    #[test]
    fn a_higher_major_version_gets_invalid_major_version() {
        let mut ike = ike();
        let mut m = isakmp(1);
        m[16] = 33; // SA
        m[17] = 0x30; // version 3.0
        m[18] = 34; // IKE_SA_INIT
        m[19] = 0x08; // initiator
        ike.handle_datagram(
            epoch(),
            "192.0.2.1:500".parse().unwrap(),
            "198.51.100.9:500".parse().unwrap(),
            &m,
        );
        let t = ike.poll_transmit().expect("an answer");
        assert!(
            t.data.windows(2).any(|w| w
                == ferrosec_wire::ikev2::NotifyType::INVALID_MAJOR_VERSION
                    .0
                    .to_be_bytes()),
            "{:02x?}",
            t.data
        );
        assert!(unserved(&mut ike).is_empty());
    }
}
