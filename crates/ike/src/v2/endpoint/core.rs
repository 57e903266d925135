//! The helpers every exchange uses from [`Core`]: randomness, SPIs, lifetimes, the outbox
//! of datagrams and events, and failure reports.

use super::*;

impl Core {
    /// The wall-clock time at `now`, in Unix seconds, if one was given.
    pub(super) fn unix_time(&self, now: Instant) -> Option<u64> {
        let (at, secs) = self.wall_clock?;
        Some(match now.checked_duration_since(at) {
            Some(d) => secs.saturating_add(d.as_secs()),
            None => secs.saturating_sub(at.duration_since(now).as_secs()),
        })
    }

    pub(super) fn lifetimes_of(&self, peer: PeerId) -> Lifetimes {
        self.lifetimes.get(&peer).copied().unwrap_or_default()
    }

    /// (soft, hard) deadlines for an SA made at `now`.
    pub(super) fn deadlines(
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

    pub(super) fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v);
        v
    }

    /// A random IKE SPI that no tombstone holds. The exchanges do not see the table: an SPI
    /// an SA has already (one chance in 2^64 per SA) is caught where the new SA goes into the
    /// table ([`Action::Insert`]), and the SAs made outside an exchange take
    /// [`Endpoint::unused_ike_spi`].
    pub(super) fn new_ike_spi(&mut self) -> IkeSpi {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let spi = IkeSpi(u64::from_be_bytes(b));
            if spi.0 != 0 && !self.tombstones.contains(&spi) {
                return spi;
            }
        }
    }

    pub(super) fn new_child_spi(&mut self) -> Spi {
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

    /// Queues an event. Events are never dropped (a lost ChildSaDown would leave the data
    /// plane holding an SA the engine deleted): the queue is bounded by the caller, who
    /// drains [`Endpoint::poll_event`] after every call, so it holds at most what one call
    /// produced, which is bounded by the SAs that call touched.
    pub(super) fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    pub(super) fn send(&mut self, local: SocketAddr, remote: SocketAddr, msg: &[u8]) {
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

    /// Reports a failed negotiation in `exchange`.
    pub(super) fn failed_in(
        &mut self,
        exchange: ExchangeType,
        sa: Option<&IkeSa>,
        peer: String,
        survives: bool,
        reason: Failure,
    ) {
        self.event(Event::Failed {
            handle: sa.map(|s| IkeSaHandle(s.our_spi())),
            peer,
            exchange: exchange.into(),
            ike_sa_survives: survives,
            reason,
        });
    }
}

/// A failed key exchange with the peer's value for IANA group `group`.
pub(super) fn peer_kex(group: u16, why: ferrosec_crypto::Error) -> Failure {
    Failure::Crypto(CryptoFailure::PeerKeyExchange { group, why })
}

/// A failed key derivation for the new `sa` ("IKE SA", "Child SA").
pub(super) fn derivation(sa: &'static str, why: ferrosec_crypto::Error) -> Failure {
    Failure::Crypto(CryptoFailure::KeyDerivation { sa, why })
}

/// Agreed algorithms this build cannot run.
pub(super) fn unsupported(what: &str, why: ferrosec_crypto::Error) -> Failure {
    Failure::Crypto(CryptoFailure::Unsupported {
        what: what.to_string(),
        why,
    })
}
