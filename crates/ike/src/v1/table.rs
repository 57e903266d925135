//! The phase-1 SAs of the IKEv1 engine in the version-neutral [`crate::table::SaTable`]:
//! what it indexes a phase-1 SA by.

use std::net::IpAddr;
use std::time::Instant;

use crate::identity::Identity;
use crate::v2::PeerId;

use super::info;
use super::sa::{P1State, Sa};

pub(crate) type SaTable = crate::table::SaTable<Sa>;

impl crate::table::Entry for Sa {
    fn deadline(&self) -> Option<Instant> {
        info::deadline(self)
    }

    /// Responder SAs whose phase 1 is not done (an initiator's are ours to bound).
    fn half_open(&self) -> Option<(IpAddr, Option<Instant>)> {
        (!self.initiator && self.state != P1State::Established).then(|| (self.remote.ip(), None))
    }

    fn peer(&self) -> PeerId {
        self.peer
    }

    /// Established SAs by the peer's identity: INITIAL-CONTACT looks up the others.
    fn indexed_identity(&self) -> Option<&Identity> {
        match self.state {
            P1State::Established => self.peer_id.as_ref(),
            _ => None,
        }
    }
}
