//! The IKE SAs of an IKEv2 endpoint in the version-neutral [`crate::table::SaTable`]: what
//! it indexes an IKE SA by (its next deadline, half-open state, peer and identity).

use super::*;

pub(super) type SaTable = crate::table::SaTable<IkeSa>;

impl crate::table::Entry for IkeSa {
    /// When the SA needs [`Endpoint::handle_timeout`] next.
    fn deadline(&self) -> Option<Instant> {
        [
            self.requests.poll_timeout(),
            match &self.state {
                State::HalfOpen { expires, .. } => Some(*expires),
                State::Established
                    if !self.requests.busy() && !matches!(self.life, Life::Rekeyed(_)) =>
                {
                    self.liveness.poll_timeout()
                }
                _ => None,
            },
            Core::sa_deadlines(self),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn half_open(&self) -> Option<(IpAddr, Option<Instant>)> {
        IkeSa::half_open(self).then_some((self.remote.ip(), Some(self.created)))
    }

    fn peer(&self) -> PeerId {
        self.peer
    }

    fn indexed_identity(&self) -> Option<&Identity> {
        self.peer_id.as_ref()
    }
}
