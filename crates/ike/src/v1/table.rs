//! The phase-1 SAs of the IKEv1 engine, with a deadline queue and a half-open count, so that
//! neither [`super::Engine::poll_timeout`] nor a new responder SA walks every SA (at 10,000
//! SAs that walk was most of the engine's time).
//!
//! Every access that may change an SA ([`SaTable::get_mut`], [`SaTable::insert`]) marks it;
//! [`SaTable::refresh`] files the marked SAs' deadlines anew. The engine refreshes at the
//! start of each entry point that looks at deadlines; [`SaTable::next_deadline`] also reads
//! the SAs marked since, so it is exact without `&mut`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use ferrosec_wire::IkeSpi;

use crate::identity::Identity;
use crate::v2::PeerId;

use super::info;
use super::sa::{P1State, Sa};

#[derive(Debug, Default)]
pub(crate) struct SaTable {
    map: HashMap<IkeSpi, Sa>,
    /// SAs that may have changed since the last refresh.
    dirty: Vec<IkeSpi>,
    /// Each SA's filed deadline, and the queue of them.
    filed: HashMap<IkeSpi, Instant>,
    queue: BTreeSet<(Instant, IkeSpi)>,
    /// Responder SAs whose phase 1 is not done.
    half_open: HashSet<IkeSpi>,
    /// Established SAs by peer configuration and a hash of the peer's identity (INITIAL-CONTACT
    /// looks up the others of the same peer), and what each is filed under.
    by_identity: HashMap<(PeerId, u64), Vec<IkeSpi>>,
    identity_of: HashMap<IkeSpi, (PeerId, u64)>,
    hasher: RandomState,
}

fn is_half_open(sa: &Sa) -> bool {
    !sa.initiator && sa.state != P1State::Established
}

impl SaTable {
    pub(crate) fn get(&self, k: &IkeSpi) -> Option<&Sa> {
        self.map.get(k)
    }

    pub(crate) fn get_mut(&mut self, k: &IkeSpi) -> Option<&mut Sa> {
        let sa = self.map.get_mut(k)?;
        self.dirty.push(*k);
        Some(sa)
    }

    pub(crate) fn insert(&mut self, k: IkeSpi, sa: Sa) {
        self.dirty.push(k);
        self.map.insert(k, sa);
    }

    pub(crate) fn remove(&mut self, k: &IkeSpi) -> Option<Sa> {
        self.unfile(k);
        self.half_open.remove(k);
        self.unfile_identity(k);
        self.map.remove(k)
    }

    fn identity_key(&self, peer: PeerId, id: &Identity) -> (PeerId, u64) {
        (peer, self.hasher.hash_one(id))
    }

    fn unfile_identity(&mut self, k: &IkeSpi) {
        if let Some(key) = self.identity_of.remove(k)
            && let Some(v) = self.by_identity.get_mut(&key)
        {
            v.retain(|x| x != k);
            if v.is_empty() {
                self.by_identity.remove(&key);
            }
        }
    }

    /// The established SAs of `peer` authenticated as `id` (after a refresh).
    pub(crate) fn established_with(&mut self, peer: PeerId, id: &Identity) -> Vec<IkeSpi> {
        self.refresh();
        let key = self.identity_key(peer, id);
        self.by_identity
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|k| {
                self.map.get(k).is_some_and(|o| {
                    o.peer == peer
                        && o.state == P1State::Established
                        && o.peer_id.as_ref() == Some(id)
                })
            })
            .copied()
            .collect()
    }

    pub(crate) fn contains_key(&self, k: &IkeSpi) -> bool {
        self.map.contains_key(k)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Sa> {
        self.map.values()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&IkeSpi, &Sa)> {
        self.map.iter()
    }

    fn unfile(&mut self, k: &IkeSpi) {
        if let Some(d) = self.filed.remove(k) {
            self.queue.remove(&(d, *k));
        }
    }

    /// Files the deadlines and half-open state of the SAs changed since the last refresh.
    pub(crate) fn refresh(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable_by_key(|k| k.0);
        dirty.dedup();
        for k in &dirty {
            self.unfile(k);
            let Some(sa) = self.map.get(k) else {
                self.half_open.remove(k);
                continue;
            };
            if let Some(d) = info::deadline(sa) {
                self.filed.insert(*k, d);
                self.queue.insert((d, *k));
            }
            if is_half_open(sa) {
                self.half_open.insert(*k);
            } else {
                self.half_open.remove(k);
            }
            let filed = match (&sa.peer_id, sa.state) {
                (Some(id), P1State::Established) => Some(self.identity_key(sa.peer, id)),
                _ => None,
            };
            if self.identity_of.get(k) != filed.as_ref() {
                self.unfile_identity(k);
                if let Some(key) = filed {
                    self.identity_of.insert(*k, key);
                    self.by_identity.entry(key).or_default().push(*k);
                }
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// The earliest deadline of any SA.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let filed = self.queue.first().map(|(d, _)| *d);
        let changed = self
            .dirty
            .iter()
            .filter_map(|k| self.map.get(k))
            .filter_map(info::deadline)
            .min();
        match (filed, changed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The SAs whose deadline is `now` or earlier (after a refresh).
    pub(crate) fn due(&mut self, now: Instant) -> Vec<IkeSpi> {
        self.refresh();
        self.queue
            .iter()
            .take_while(|(d, _)| *d <= now)
            .map(|(_, k)| *k)
            .collect()
    }

    /// Responder SAs whose phase 1 is not done (after a refresh).
    pub(crate) fn half_open_count(&mut self) -> usize {
        self.refresh();
        self.half_open.len()
    }
}

#[cfg(test)]
impl SaTable {
    /// Checks the index against a walk over every SA.
    pub(crate) fn assert_consistent(&mut self) {
        self.refresh();
        let walked = self.map.values().filter_map(info::deadline).min();
        assert_eq!(self.next_deadline(), walked, "deadline queue");
        let half = self.map.values().filter(|s| is_half_open(s)).count();
        assert_eq!(self.half_open.len(), half, "half-open count");
        let established: Vec<(IkeSpi, PeerId, Identity)> = self
            .map
            .iter()
            .filter(|(_, sa)| sa.state == P1State::Established)
            .filter_map(|(k, sa)| sa.peer_id.clone().map(|id| (*k, sa.peer, id)))
            .collect();
        for (k, peer, id) in &established {
            assert!(
                self.established_with(*peer, id).contains(k),
                "identity index"
            );
        }
        let filed: usize = self.by_identity.values().map(Vec::len).sum();
        assert_eq!(filed, established.len(), "identity index size");
        assert_eq!(self.filed.len(), self.queue.len());
    }
}
