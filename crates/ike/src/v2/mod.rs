//! The IKEv2 engine (RFC 7296).
//!
//! One [`Endpoint`] holds every IKE SA of a gateway. It is a pure state machine:
//!
//! ```text
//!   handle_datagram(now, local, remote, bytes) ─┐            ┌─> poll_transmit()  datagrams
//!   handle_timeout(now)                        ─┼─ Endpoint ─┼─> poll_event()     SAs up/down, failures
//!   initiate / delete_ike_sa / check_liveness  ─┘            └─> poll_timeout()   next deadline
//! ```
//!
//! # What is implemented
//!
//! - IKE_SA_INIT with proposal selection, INVALID_KE_PAYLOAD retry, COOKIE (both roles),
//!   NAT detection and the switch to port 4500.
//! - IKE_AUTH with shared-key authentication (§2.15) and the first Child SA: proposal
//!   selection, traffic-selector narrowing, TS_UNACCEPTABLE / NO_PROPOSAL_CHOSEN with the IKE
//!   SA surviving, AUTHENTICATION_FAILED.
//! - Per-tunnel Child SA settings ([`ChildPolicy`]): each policy (proxy ID) has its own
//!   proposals, PFS group and lifetime, offered for its Child SAs and their rekeys; a
//!   responder narrows the traffic selectors to a policy first and then selects among that
//!   policy's proposals only, naming the policy whose profile refused
//!   ([`Failure::ChildNoProposalChosen`]).
//! - INFORMATIONAL: IKE SA delete, Child SA delete, liveness checks (R-V2-3), answered and
//!   sent (schedule in [`crate::retransmit`]: a check after the interval of silence, 8
//!   retransmissions at most 2 s apart, dead 18 s after the check).
//! - Hints that the peer lost an SA ([`Event::PeerHint`]): an unprotected INVALID_IKE_SPI
//!   answering our request in flight (its message ID and both SPIs, on an SA the peer has used)
//!   moves that request to a short schedule (dead ≈ 4 s later without an authenticated
//!   answer, [`DownReason::PeerLostSa`]), never a longer one; an unprotected INVALID_SPI or
//!   INVALID_IKE_SPI request with our SPIs starts a liveness check (rate-limited); a
//!   protected INVALID_SPI deletes the pair it names.
//! - CREATE_CHILD_SA: one Child SA per further proxy ID after IKE_AUTH, Child SA rekey with
//!   REKEY_SA and optional PFS, IKE SA rekey (§1.3.2, §2.18: new SPIs, SKEYSEED from the old
//!   SK_d, Child SAs move to the new IKE SA, the rekey initiator deletes the old one),
//!   INVALID_KE_PAYLOAD retried with the group the peer asks for, NO_ADDITIONAL_SAS.
//! - Make-before-break: [`Event::ChildSaUp`] of the new pair, then
//!   [`Event::ChildSaRekeyed`] (switch outbound), and only then [`Event::ChildSaDown`] of
//!   the old pair; [`Event::IkeSaRekeyed`] for the IKE SA (old handles keep working). The
//!   switch never comes before the peer has installed the new pair: the rekey initiator
//!   switches when the response arrives, the responder when the initiator's DELETE of the
//!   old pair (or any later request) arrives, or after the retransmission time if neither
//!   does (as strongSwan since 5.5).
//! - Collisions (§2.8.1, §2.8.2, §2.25): simultaneous Child or IKE SA rekeys are both
//!   answered and the exchange with the lowest nonce loses (its initiator deletes what it
//!   made); TEMPORARY_FAILURE (retried after a random delay) for a rekey of something being
//!   deleted or while the IKE SA is rekeyed; CHILD_SA_NOT_FOUND; crossing deletes; a DELETE
//!   that overtakes a CREATE_CHILD_SA response; a crossing IKE_SA_INIT (the duplicate with
//!   the lowest nonce is deleted by its initiator).
//! - Lifetimes ([`Lifetimes`] and [`Endpoint::set_lifetimes`] for the IKE SA,
//!   [`ChildPolicy::lifetime`] for Child SAs): soft (rekey) and hard (delete) with jitter
//!   from the injected RNG, [`Event::ChildSaExpired`];
//!   re-authentication after `authentication-multiple` IKE lifetimes (R-V2-11), reported as
//!   one ([`IkeSaInfo::reauth`]: the SA it replaces and why) with the time of the next one
//!   ([`IkeSaInfo::reauth_at`], [`IkeSaSnapshot::reauth_at`]).
//! - INITIAL_CONTACT sent on a first contact and honoured; AUTHENTICATION_FAILED sent by an
//!   initiator that rejects the responder's AUTH (§2.21.2); a Child SA answer we reject is
//!   deleted at the peer; INVALID_IKE_SPI and INVALID_MAJOR_VERSION, rate-limited.
//! - Message IDs with window size 1, retransmission with back-off, cached responses; commands
//!   are queued per IKE SA and run one request at a time. [`Endpoint::snapshot`] shows every
//!   SA, its state, key fingerprints and queued work.
//! - Tombstones: an IKE SA that goes right after it answered (a DELETE, a rekey's or a
//!   collision's DELETE, INITIAL_CONTACT) leaves its last response behind for the peer's
//!   retransmission window, so that a retransmitted request gets its answer instead of
//!   INVALID_IKE_SPI (§2.1); bounded in count, bytes and lifetime
//!   ([`EndpointConfig::max_tombstones`], [`Endpoint::tombstone_stats`]).
//!
//! # Memory
//!
//! About 1.6 KB of heap per responder IKE SA with one Child SA (`examples/mem_per_sa.rs`,
//! heaptrack, 2,000 and 10,000 SAs): the boxed SA (~610 B), the cached last response, the
//! keys as bytes in one block (the SK crypters are keyed per message, not kept), one Child
//! SA record with key fingerprints (the keys and selectors go to the data plane in
//! [`Event::ChildSaUp`] and are not kept here), and the lookup indexes. The IKE_SA_INIT
//! messages and nonces are dropped once AUTH is verified. Tombstones of deleted SAs take at
//! most 2 MiB in all (4,096 entries of about 310 B with the usual empty response).
//!
//! Authentication: a pre-shared key, or certificates ([`CertAuth`], set per peer with
//! [`Endpoint::set_certificates`]; RFC 7427 signatures, chains checked at the wall-clock time
//! given by [`Endpoint::set_wall_clock`]).
//!
//! Not yet: hash-and-URL, fragmentation, configuration payload, IKE SA rekey of a Child SA
//! exchange that is in flight (refused with TEMPORARY_FAILURE and retried instead).

pub(crate) mod certauth;
mod config;
pub mod cookie;
mod endpoint;
mod fragment;
mod protect;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_certs;
#[cfg(test)]
mod tests_cp;
#[cfg(test)]
mod tests_events;
#[cfg(test)]
mod tests_flood;
#[cfg(test)]
mod tests_followup_ke;
#[cfg(test)]
mod tests_frag;
#[cfg(test)]
mod tests_init;
#[cfg(test)]
mod tests_mlkem;
#[cfg(test)]
mod tests_reload;

pub use crate::event::{
    AuthInfo, CertificateInfo, ChildKeys, ChildSaInfo, CryptoFailure, DownReason, Event, Exchange,
    Failure, Hint, IkeSaHandle, IkeSaInfo, LocalError, Malformed, ReauthReason, Reauthentication,
    VirtualConfig,
};
pub use certauth::{AuthKey, CertAuth};
pub use config::{
    AddressPools, ChildPolicy, ConfigPayload, EndpointConfig, Identity, Lifetimes, PeerConfig,
    PeerId, PolicyId, SaLifetime, esp_proposal_cbc, esp_proposal_gcm, ike_proposal_cbc,
    ike_proposal_gcm,
};
pub use endpoint::{
    ChildSaSnapshot, ChildState, CommandError, Endpoint, IKE_PORT, IkeSaSnapshot, IkeSaState,
    MAX_POOL_ADDRESSES, NATT_PORT, PolicyUpdate, TombstoneStats,
};

#[cfg(any(test, feature = "sim"))]
impl crate::sim::SimEndpoint for Endpoint {
    type Event = Event;

    fn handle_datagram(
        &mut self,
        now: std::time::Instant,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
        data: &[u8],
    ) {
        Endpoint::handle_datagram(self, now, local, remote, data);
    }

    fn handle_timeout(&mut self, now: std::time::Instant) {
        Endpoint::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<crate::Transmit> {
        Endpoint::poll_transmit(self)
    }

    fn poll_timeout(&mut self) -> Option<std::time::Instant> {
        Endpoint::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Endpoint::poll_event(self)
    }
}
