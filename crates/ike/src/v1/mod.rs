//! IKEv1 (RFC 2409 over ISAKMP, RFC 2408): not served by this build yet.
//!
//! The engine here only refuses, politely: an ISAKMP message is dropped without an answer
//! (nothing of IKEv1 is negotiated, so there is nothing to answer with) and reported, the
//! first at once and then one summary per [`REPORT_INTERVAL`] with its sources, so that an
//! operator whose peer is configured for IKEv1 sees why the tunnel does not come up instead
//! of a peer that merely looks unreachable. Main, aggressive and quick mode land here as
//! files of their own, beside `v2/`, behind the same [`crate::Ike`] facade.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::v2::Event;

/// IKEv1 messages are reported at most this often.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// The most sources named in one report.
const MAX_SOURCES: usize = 8;

/// The IKEv1 engine of this build: counts and reports what it cannot serve.
#[derive(Debug, Default)]
pub struct Engine {
    count: u64,
    sources: Vec<SocketAddr>,
    last: Option<Instant>,
    events: Vec<Event>,
}

impl Engine {
    /// An engine that refuses everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// An ISAKMP datagram from `remote` (already known to be major version 1).
    pub fn handle_datagram(&mut self, now: Instant, remote: SocketAddr) {
        self.count += 1;
        if self.sources.len() < MAX_SOURCES && !self.sources.contains(&remote) {
            self.sources.push(remote);
        }
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < REPORT_INTERVAL)
        {
            return;
        }
        self.last = Some(now);
        self.events.push(Event::UnservedVersion {
            major: 1,
            count: std::mem::take(&mut self.count),
            sources: std::mem::take(&mut self.sources),
        });
    }

    /// The next event (at most one is pending: the engine reports at most once per
    /// [`REPORT_INTERVAL`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }
}
