//! The IKE SA table both engines keep: every SA keyed by our SPI (IKEv2) or cookie (IKEv1),
//! with the indexes that keep a message, a timeout or a new half-open SA from walking every SA
//! (at 10,000 SAs such walks were most of either engine's time): a deadline queue, half-open
//! counts per address and by age, SAs per peer configuration, and established SAs by
//! authenticated identity.
//!
//! An SA is changed in place through [`SaTable::get_mut`], which marks it; the indexes of the
//! SAs marked since are brought up to date by [`SaTable::refresh`], which every index lookup
//! that takes `&mut self` runs first. The engines also refresh at the end of each entry point,
//! and the lookups that take `&self` ([`SaTable::next_deadline`], [`SaTable::half_open_count`],
//! [`SaTable::has_peer`]) account for the marked SAs themselves, so they are exact at any time.
//! Nothing is taken out of the table to be changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::time::Instant;

use ferrosec_wire::IkeSpi;

use crate::identity::Identity;
use crate::v2::PeerId;

/// What the table indexes an SA by; each engine's SA type says it from its own fields.
pub(crate) trait Entry {
    /// When the engine must look at the SA next (retransmission, expiry, rekey, liveness).
    fn deadline(&self) -> Option<Instant>;
    /// While the SA is half-open: the peer's address and, where the engine replaces the
    /// oldest half-open SA under load, when the SA was made.
    fn half_open(&self) -> Option<(IpAddr, Option<Instant>)>;
    /// Its peer configuration.
    fn peer(&self) -> PeerId;
    /// The authenticated identity it is found by (INITIAL_CONTACT, duplicate SAs), if any.
    fn indexed_identity(&self) -> Option<&Identity>;
}

/// What an SA is filed under now, so that it can be unfiled after it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filed {
    deadline: Option<Instant>,
    half_open: Option<(IpAddr, Option<Instant>)>,
    peer: PeerId,
    identity: Option<u64>,
}

/// The IKE SAs of an engine, with their indexes.
#[derive(Debug)]
pub(crate) struct SaTable<S> {
    /// A BTreeMap so that iteration is deterministic. Boxed: a B-tree node holds eleven
    /// values and is on average about two thirds full, so inline SAs would cost half as much
    /// again in slack, and every insert would shift whole SAs around inside a node.
    map: BTreeMap<IkeSpi, Box<S>>,
    /// SAs that may have changed since the last refresh.
    dirty: BTreeSet<IkeSpi>,
    filed: HashMap<IkeSpi, Filed>,
    /// (deadline, SPI) of every SA that has one.
    timers: BTreeSet<(Instant, IkeSpi)>,
    half_open: usize,
    half_open_by_addr: HashMap<IpAddr, usize>,
    /// (made, SPI) of the half-open SAs that say when they were made, oldest first.
    half_open_order: BTreeSet<(Instant, IkeSpi)>,
    per_peer: HashMap<PeerId, usize>,
    /// (peer configuration, hash of the identity) → SAs, in SPI order: a sorted vector of
    /// exact capacity (almost always one SA; a BTreeSet takes a 100-byte node).
    by_identity: HashMap<(PeerId, u64), Vec<IkeSpi>>,
    hasher: RandomState,
}

impl<S> Default for SaTable<S> {
    fn default() -> Self {
        SaTable {
            map: BTreeMap::new(),
            dirty: BTreeSet::new(),
            filed: HashMap::new(),
            timers: BTreeSet::new(),
            half_open: 0,
            half_open_by_addr: HashMap::new(),
            half_open_order: BTreeSet::new(),
            per_peer: HashMap::new(),
            by_identity: HashMap::new(),
            hasher: RandomState::new(),
        }
    }
}

impl<S: Entry> SaTable<S> {
    pub(crate) fn get(&self, k: &IkeSpi) -> Option<&S> {
        self.map.get(k).map(|b| &**b)
    }

    /// The SA, to change in place; its indexes follow at the next refresh.
    pub(crate) fn get_mut(&mut self, k: &IkeSpi) -> Option<&mut S> {
        let sa = self.map.get_mut(k)?;
        self.dirty.insert(*k);
        Some(&mut **sa)
    }

    /// Changes an SA in place.
    pub(crate) fn update<R>(&mut self, k: &IkeSpi, f: impl FnOnce(&mut S) -> R) -> Option<R> {
        self.get_mut(k).map(f)
    }

    pub(crate) fn insert(&mut self, k: IkeSpi, sa: impl Into<Box<S>>) {
        self.map.insert(k, sa.into());
        self.dirty.insert(k);
    }

    pub(crate) fn remove(&mut self, k: &IkeSpi) -> Option<Box<S>> {
        let sa = self.map.remove(k)?;
        self.dirty.remove(k);
        self.unfile(k);
        Some(sa)
    }

    pub(crate) fn contains_key(&self, k: &IkeSpi) -> bool {
        self.map.contains_key(k)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &S> {
        self.map.values().map(|b| &**b)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&IkeSpi, &S)> {
        self.map.iter().map(|(k, v)| (k, &**v))
    }

    fn identity_key(&self, peer: PeerId, id: &Identity) -> (PeerId, u64) {
        (peer, self.hasher.hash_one(id))
    }

    fn filing(&self, sa: &S) -> Filed {
        Filed {
            deadline: sa.deadline(),
            half_open: sa.half_open(),
            peer: sa.peer(),
            identity: sa
                .indexed_identity()
                .map(|id| self.identity_key(sa.peer(), id).1),
        }
    }

    fn unfile(&mut self, k: &IkeSpi) {
        let Some(f) = self.filed.remove(k) else {
            return;
        };
        if let Some(d) = f.deadline {
            self.timers.remove(&(d, *k));
        }
        if let Some((ip, since)) = f.half_open {
            self.half_open -= 1;
            if let Some(n) = self.half_open_by_addr.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.half_open_by_addr.remove(&ip);
                }
            }
            if let Some(t) = since {
                self.half_open_order.remove(&(t, *k));
            }
        }
        if let Some(n) = self.per_peer.get_mut(&f.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&f.peer);
            }
        }
        if let Some(h) = f.identity
            && let Some(v) = self.by_identity.get_mut(&(f.peer, h))
        {
            if let Ok(pos) = v.binary_search(k) {
                v.remove(pos);
                v.shrink_to_fit();
            }
            if v.is_empty() {
                self.by_identity.remove(&(f.peer, h));
            }
        }
    }

    fn file(&mut self, k: IkeSpi, f: Filed) {
        if let Some(d) = f.deadline {
            self.timers.insert((d, k));
        }
        if let Some((ip, since)) = f.half_open {
            self.half_open += 1;
            *self.half_open_by_addr.entry(ip).or_insert(0) += 1;
            if let Some(t) = since {
                self.half_open_order.insert((t, k));
            }
        }
        *self.per_peer.entry(f.peer).or_insert(0) += 1;
        if let Some(h) = f.identity {
            let v = self.by_identity.entry((f.peer, h)).or_default();
            if let Err(pos) = v.binary_search(&k) {
                v.reserve_exact(1);
                v.insert(pos, k);
            }
        }
        self.filed.insert(k, f);
    }

    /// Files the SAs changed since the last refresh anew.
    pub(crate) fn refresh(&mut self) {
        while let Some(k) = self.dirty.pop_first() {
            let Some(sa) = self.map.get(&k) else {
                continue;
            };
            let f = self.filing(sa);
            if self.filed.get(&k) == Some(&f) {
                continue;
            }
            self.unfile(&k);
            self.file(k, f);
        }
    }

    /// The earliest deadline of any SA (exact without a refresh).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let filed = self
            .timers
            .iter()
            .find(|(_, k)| !self.dirty.contains(k))
            .map(|(d, _)| *d);
        let changed = self
            .dirty
            .iter()
            .filter_map(|k| self.map.get(k))
            .filter_map(|sa| sa.deadline())
            .min();
        match (filed, changed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The SAs whose deadline is `now` or earlier, in SPI order.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<IkeSpi> {
        self.refresh();
        let mut v: Vec<IkeSpi> = self
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, s)| *s)
            .collect();
        v.sort_unstable();
        v
    }

    /// Half-open SAs now (exact without a refresh).
    pub(crate) fn half_open_count(&self) -> usize {
        let mut n = self.half_open;
        for k in &self.dirty {
            if self.filed.get(k).is_some_and(|f| f.half_open.is_some()) {
                n -= 1;
            }
            if self.map.get(k).is_some_and(|sa| sa.half_open().is_some()) {
                n += 1;
            }
        }
        n
    }

    /// Half-open SAs from this address.
    pub(crate) fn half_open_from(&mut self, ip: IpAddr) -> usize {
        self.refresh();
        self.half_open_by_addr.get(&ip).copied().unwrap_or(0)
    }

    /// The oldest half-open SA that says when it was made, if that was at or before `before`.
    pub(crate) fn oldest_half_open(&mut self, before: Instant) -> Option<IkeSpi> {
        self.refresh();
        self.half_open_order
            .first()
            .filter(|(t, _)| *t <= before)
            .map(|(_, spi)| *spi)
    }

    /// Whether any SA of this peer configuration exists (exact without a refresh).
    pub(crate) fn has_peer(&self, peer: PeerId) -> bool {
        let filed = self.per_peer.get(&peer).copied().unwrap_or(0);
        let moved_away = self
            .dirty
            .iter()
            .filter(|k| self.filed.get(k).is_some_and(|f| f.peer == peer))
            .count();
        filed > moved_away
            || self
                .dirty
                .iter()
                .any(|k| self.map.get(k).is_some_and(|sa| sa.peer() == peer))
    }

    /// How many SAs this peer configuration has.
    pub(crate) fn count_of_peer(&mut self, peer: PeerId) -> usize {
        self.refresh();
        self.per_peer.get(&peer).copied().unwrap_or(0)
    }

    /// The SAs of a peer configuration indexed under `id`, in SPI order.
    pub(crate) fn with_identity(&mut self, peer: PeerId, id: &Identity) -> Vec<IkeSpi> {
        self.refresh();
        let key = self.identity_key(peer, id);
        self.by_identity
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|k| {
                self.map
                    .get(k)
                    .is_some_and(|o| o.indexed_identity() == Some(id))
            })
            .copied()
            .collect()
    }

    /// Checks every index against a walk over every SA (tests; panics on a difference).
    #[cfg(test)]
    pub(crate) fn assert_consistent(&mut self) {
        let before = self.next_deadline();
        let count = self.half_open_count();
        self.refresh();
        let walked = self.map.values().filter_map(|s| s.deadline()).min();
        assert_eq!(before, walked, "deadline before refresh");
        assert_eq!(
            self.timers.first().map(|(t, _)| *t),
            walked,
            "deadline queue"
        );
        let half = self
            .map
            .values()
            .filter(|s| s.half_open().is_some())
            .count();
        assert_eq!(count, half, "half-open count before refresh");
        assert_eq!(self.half_open, half, "half-open count");
        let mut by_addr: HashMap<IpAddr, usize> = HashMap::new();
        for (ip, _) in self.map.values().filter_map(|s| s.half_open()) {
            *by_addr.entry(ip).or_default() += 1;
        }
        assert_eq!(self.half_open_by_addr, by_addr, "half-open per address");
        let mut per_peer: HashMap<PeerId, usize> = HashMap::new();
        for s in self.map.values() {
            *per_peer.entry(s.peer()).or_default() += 1;
        }
        assert_eq!(self.per_peer, per_peer, "SAs per peer");
        let identities: Vec<(IkeSpi, PeerId, Identity)> = self
            .map
            .iter()
            .filter_map(|(k, s)| s.indexed_identity().map(|id| (*k, s.peer(), id.clone())))
            .collect();
        let indexed = identities.len();
        for (k, peer, id) in identities {
            assert!(self.with_identity(peer, &id).contains(&k), "identity index");
        }
        let filed: usize = self.by_identity.values().map(Vec::len).sum();
        assert_eq!(filed, indexed, "identity index size");
        assert_eq!(self.filed.len(), self.map.len(), "every SA filed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    #[derive(Debug)]
    struct T {
        deadline: Option<Instant>,
        half_open: Option<(IpAddr, Option<Instant>)>,
        peer: PeerId,
        id: Option<Identity>,
    }

    impl Entry for T {
        fn deadline(&self) -> Option<Instant> {
            self.deadline
        }
        fn half_open(&self) -> Option<(IpAddr, Option<Instant>)> {
            self.half_open
        }
        fn peer(&self) -> PeerId {
            self.peer
        }
        fn indexed_identity(&self) -> Option<&Identity> {
            self.id.as_ref()
        }
    }

    /// Every lookup stays exact while SAs change in place, before and after a refresh, and a
    /// removed SA leaves no trace in any index.
    #[test]
    fn indexes_follow_changes_in_place() {
        let t0 = crate::sim::epoch();
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let mut table: SaTable<T> = SaTable::default();
        for i in 1..=5u64 {
            table.insert(
                IkeSpi(i),
                T {
                    deadline: Some(t0 + Duration::from_secs(10 * i)),
                    half_open: Some((ip, Some(t0 + Duration::from_secs(i)))),
                    peer: PeerId(0),
                    id: None,
                },
            );
        }
        table.assert_consistent();
        assert_eq!(table.half_open_from(ip), 5);
        assert_eq!(
            table.oldest_half_open(t0 + Duration::from_secs(1)),
            Some(IkeSpi(1))
        );

        // SA 1 completes: no longer half-open, authenticated, a later deadline; it moves to
        // peer 1. Before any refresh the &self lookups already see it.
        let sa = table.get_mut(&IkeSpi(1)).unwrap();
        sa.half_open = None;
        sa.deadline = Some(t0 + Duration::from_secs(100));
        sa.peer = PeerId(1);
        sa.id = Some(Identity::fqdn("a.example"));
        assert_eq!(table.half_open_count(), 4);
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(20)));
        assert!(table.has_peer(PeerId(1)));
        assert_eq!(
            table.with_identity(PeerId(1), &Identity::fqdn("a.example")),
            vec![IkeSpi(1)]
        );
        assert_eq!(
            table.oldest_half_open(t0 + Duration::from_secs(5)),
            Some(IkeSpi(2))
        );
        table.assert_consistent();

        assert_eq!(
            table.due(t0 + Duration::from_secs(30)),
            vec![IkeSpi(2), IkeSpi(3)]
        );
        table.remove(&IkeSpi(1));
        assert!(!table.has_peer(PeerId(1)));
        assert!(
            table
                .with_identity(PeerId(1), &Identity::fqdn("a.example"))
                .is_empty()
        );
        table.get_mut(&IkeSpi(2)).unwrap().peer = PeerId(1);
        assert!(table.has_peer(PeerId(1)));
        table.remove(&IkeSpi(2));
        assert!(!table.has_peer(PeerId(1)));
        table.assert_consistent();
        assert_eq!(table.len(), 3);
    }
}
