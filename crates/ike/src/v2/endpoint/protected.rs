//! Protected messages out and in: sealed whole or as IKE fragments (RFC 7383) when both
//! sides announced fragmentation and the message would not fit the path, and opened whole or
//! fragment by fragment into the reassembly of the IKE SA.

use super::*;
use crate::v2::fragment::Added;
use crate::v2::protect::ProtectError;

/// What opening a protected message gave.
#[derive(Debug)]
pub(super) enum Opened {
    /// The whole message: the first inner payload's type and the decrypted payloads.
    Whole(PayloadType, Vec<u8>),
    /// A verified fragment was kept; the message is not complete yet.
    Partial,
    /// Not authentic, not acceptable or not parseable: dropped without a word (§3.14).
    Dropped,
}

impl IkeSa {
    /// The largest IKE message (without the NAT-T marker) one fragment may be on this SA's
    /// path: the IPv4 fragment size from the configuration, 1280 on IPv6, less the IP and
    /// UDP headers and the non-ESP marker on port 4500.
    fn fragment_limit(&self, cfg: &EndpointConfig) -> usize {
        //= https://www.rfc-editor.org/rfc/rfc7383#section-2.5.1
        //# For IPv6, this means that messages must be at most 1280 octets
        let (ip_header, packet) = if self.remote.is_ipv4() {
            (20, cfg.fragment_size_v4)
        } else {
            (40, 1280)
        };
        let marker = if self.local.port() == NATT_PORT || self.remote.port() == NATT_PORT {
            4
        } else {
            0
        };
        packet.saturating_sub(ip_header + 8 + marker)
    }

    /// Seals a message of this SA: one datagram, or its fragments when fragmentation was
    /// negotiated and the message does not fit [`Self::fragment_limit`].
    pub(super) fn protect(
        &self,
        rng: &mut dyn Rng,
        cfg: &EndpointConfig,
        header: Header,
        inner: &[Payload<'_>],
    ) -> Result<Vec<Vec<u8>>, ProtectError> {
        let keys = self.keys.as_ref().ok_or(ProtectError::NoSk)?;
        if self.fragmentation {
            keys.seal_fragmented(rng, header, inner, self.fragment_limit(cfg))
        } else {
            Ok(vec![keys.seal(rng, header, inner)?])
        }
    }

    /// Verifies and decrypts a message of this SA; a fragment goes into the reassembly and
    /// the message comes out whole with its last missing fragment.
    pub(super) fn unprotect(&mut self, header: &Header, data: &[u8], msg: &Message<'_>) -> Opened {
        let (Some(keys), Some(layout)) = (&self.keys, msg.sk_layout()) else {
            return Opened::Dropped;
        };
        if layout.fragment.is_none() {
            return match keys.open(data, msg) {
                Ok((first, plain)) => Opened::Whole(first, plain),
                Err(_) => Opened::Dropped,
            };
        }
        // Fragments from a peer that did not announce fragmentation are not expected (§2.3).
        if !self.fragmentation {
            return Opened::Dropped;
        }
        let Ok(f) = keys.open_fragment(data, msg) else {
            return Opened::Dropped;
        };
        match self
            .frags
            .add(header.flags.response(), header.message_id, f)
        {
            Added::Complete(first, plain) => Opened::Whole(first, plain),
            Added::Incomplete => Opened::Partial,
            Added::Refused(_) => Opened::Dropped,
        }
    }
}

/// The Fragment Number of a message's SKF payload, `None` when it is not a fragment.
pub(super) fn fragment_number(msg: &Message<'_>) -> Option<u16> {
    msg.sk_layout()?.fragment.map(|(number, _)| number)
}
