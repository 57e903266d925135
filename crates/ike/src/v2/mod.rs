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
//! - INFORMATIONAL: IKE SA delete, Child SA delete, liveness checks (R-V2-3), answered and
//!   sent.
//! - CREATE_CHILD_SA: one Child SA per further proxy ID after IKE_AUTH, Child SA rekey with
//!   REKEY_SA and optional PFS, make-before-break (the old pair is deleted after the new one
//!   is up).
//! - Message IDs with window size 1, retransmission with back-off, cached responses; commands
//!   are queued per IKE SA and run one request at a time.
//!
//! Not yet: IKE SA rekey (answered with NO_ADDITIONAL_SAS), INVALID_KE_PAYLOAD retry in
//! CREATE_CHILD_SA, lifetimes and automatic rekey, collisions of simultaneous exchanges
//! (§2.8.1), re-authentication, certificates, fragmentation, INITIAL_CONTACT.

mod config;
mod endpoint;
mod event;
mod protect;
#[cfg(test)]
mod tests;

pub use config::{
    EndpointConfig, Identity, Lifetimes, PeerConfig, SaLifetime, esp_proposal_cbc,
    esp_proposal_gcm, ike_proposal_cbc, ike_proposal_gcm,
};
pub use endpoint::{
    ChildSaSnapshot, ChildState, CommandError, Endpoint, IKE_PORT, IkeSaSnapshot, IkeSaState,
    NATT_PORT,
};
pub use event::{ChildKeys, ChildSaInfo, DownReason, Event, Failure, IkeSaHandle, IkeSaInfo};

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
