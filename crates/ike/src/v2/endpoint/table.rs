//! The SA table: every IKE SA of the endpoint keyed by our SPI, with a deadline queue and
//! the indexes (per peer, per identity, half-open per address) that keep every event O(log n).

use super::*;

/// The IKE SAs of an endpoint, keyed by our own SPI, with the indexes that spare the
/// per-message and per-timeout paths a walk over every SA (R-PERF: the cost of a handshake
/// or a timeout must not grow with the number of SAs).
///
/// An SA is only changed while it is out of the table ([`SaTable::remove`], then
/// [`SaTable::insert`]) or through [`SaTable::update`], so that every index is rebuilt from
/// its fields as it goes back in: its next deadline in a timer queue, the half-open count,
/// the SAs per peer configuration and per authenticated identity.
#[derive(Debug, Default)]
pub(super) struct SaTable {
    /// A BTreeMap so that iteration is deterministic. Boxed: a B-tree node holds eleven
    /// values and is on average about two thirds full, so inline SAs would cost half as much
    /// again in slack, and every insert would shift whole SAs around inside a node.
    map: BTreeMap<IkeSpi, Box<IkeSa>>,
    /// (next deadline, SPI) of every SA that has one.
    timers: BTreeSet<(Instant, IkeSpi)>,
    /// The deadline each SA is queued with in `timers`.
    deadline: HashMap<IkeSpi, Instant>,
    half_open: usize,
    /// Half-open SAs per peer address (responder), for the per-address limit.
    half_open_by_addr: HashMap<IpAddr, usize>,
    /// (created, SPI) of every half-open SA, oldest first: what the global limit replaces.
    half_open_order: BTreeSet<(Instant, IkeSpi)>,
    /// Peer configuration → number of SAs.
    per_peer: HashMap<PeerId, usize>,
    /// (peer configuration, authenticated peer identity) → SAs, in SPI order (a sorted
    /// vector of exact capacity: almost always one SA, where a BTreeSet takes a 100-byte
    /// node).
    by_identity: HashMap<(PeerId, Identity), Vec<IkeSpi>>,
}

impl SaTable {
    /// When the SA needs [`Endpoint::handle_timeout`] next.
    pub(super) fn next_deadline(sa: &IkeSa) -> Option<Instant> {
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

    pub(super) fn index(&mut self, spi: IkeSpi, sa: &IkeSa) {
        if let Some(t) = Self::next_deadline(sa) {
            self.timers.insert((t, spi));
            self.deadline.insert(spi, t);
        }
        if sa.half_open() {
            self.half_open += 1;
            *self.half_open_by_addr.entry(sa.remote.ip()).or_insert(0) += 1;
            self.half_open_order.insert((sa.created, spi));
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

    pub(super) fn unindex(&mut self, spi: IkeSpi, sa: &IkeSa) {
        if let Some(t) = self.deadline.remove(&spi) {
            self.timers.remove(&(t, spi));
        }
        if sa.half_open() {
            self.half_open -= 1;
            if let Some(n) = self.half_open_by_addr.get_mut(&sa.remote.ip()) {
                *n -= 1;
                if *n == 0 {
                    self.half_open_by_addr.remove(&sa.remote.ip());
                }
            }
            self.half_open_order.remove(&(sa.created, spi));
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

    pub(super) fn insert(&mut self, spi: IkeSpi, sa: impl Into<Box<IkeSa>>) {
        let sa = sa.into();
        if let Some(old) = self.map.remove(&spi) {
            // Never happens (SPIs are unique), but keep the indexes right if it does.
            self.unindex(spi, &old);
        }
        self.index(spi, &sa);
        self.map.insert(spi, sa);
    }

    pub(super) fn remove(&mut self, spi: &IkeSpi) -> Option<Box<IkeSa>> {
        let sa = self.map.remove(spi)?;
        self.unindex(*spi, &sa);
        Some(sa)
    }

    /// Changes an SA in place and re-indexes it.
    pub(super) fn update<R>(&mut self, spi: &IkeSpi, f: impl FnOnce(&mut IkeSa) -> R) -> Option<R> {
        let mut sa = self.remove(spi)?;
        let r = f(&mut sa);
        self.insert(*spi, sa);
        Some(r)
    }

    pub(super) fn get(&self, spi: &IkeSpi) -> Option<&IkeSa> {
        self.map.get(spi).map(|v| &**v)
    }

    pub(super) fn contains_key(&self, spi: &IkeSpi) -> bool {
        self.map.contains_key(spi)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &IkeSa> {
        self.map.values().map(|b| &**b)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&IkeSpi, &IkeSa)> {
        self.map.iter().map(|(k, v)| (k, &**v))
    }

    /// The earliest deadline of any SA.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The SAs whose deadline is at or before `now`, in SPI order.
    pub(super) fn due(&self, now: Instant) -> Vec<IkeSpi> {
        let mut v: Vec<IkeSpi> = self
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, s)| *s)
            .collect();
        v.sort_unstable();
        v
    }

    pub(super) fn half_open_count(&self) -> usize {
        self.half_open
    }

    /// Half-open SAs from this address.
    pub(super) fn half_open_from(&self, ip: IpAddr) -> usize {
        self.half_open_by_addr.get(&ip).copied().unwrap_or(0)
    }

    /// The oldest half-open SA, if it was made at or before `before`.
    pub(super) fn oldest_half_open(&self, before: Instant) -> Option<IkeSpi> {
        self.half_open_order
            .first()
            .filter(|(t, _)| *t <= before)
            .map(|(_, spi)| *spi)
    }

    pub(super) fn has_peer(&self, peer: PeerId) -> bool {
        self.per_peer.contains_key(&peer)
    }

    /// The SAs of a peer configuration authenticated as `id`, in SPI order.
    pub(super) fn with_identity(&self, peer: PeerId, id: &Identity) -> Vec<IkeSpi> {
        self.by_identity
            .get(&(peer, id.clone()))
            .map(|s| s.to_vec())
            .unwrap_or_default()
    }
}
