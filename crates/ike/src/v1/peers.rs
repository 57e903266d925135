//! The peers the IKEv1 engine serves, indexed by their configured address: a first message
//! from an address finds its gateway without a walk over every gateway (a gateway per branch
//! office makes thousands of them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::v2::{PeerConfig, PeerId};

use super::Settings;

/// A peer served over IKEv1.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub(super) cfg: Arc<PeerConfig>,
    pub(super) settings: Settings,
}

/// The peers, with an index by peer address and the set of dynamic ones (no address).
#[derive(Default)]
pub(super) struct Peers {
    map: BTreeMap<PeerId, Peer>,
    by_addr: HashMap<IpAddr, BTreeSet<PeerId>>,
    dynamic: BTreeSet<PeerId>,
}

impl Peers {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn get(&self, id: &PeerId) -> Option<&Peer> {
        self.map.get(id)
    }

    pub(super) fn contains_key(&self, id: &PeerId) -> bool {
        self.map.contains_key(id)
    }

    /// Adds `id`, or replaces it.
    pub(super) fn insert(&mut self, id: PeerId, peer: Peer) {
        self.remove(&id);
        self.index(id, peer.cfg.peer_addr);
        self.map.insert(id, peer);
    }

    pub(super) fn remove(&mut self, id: &PeerId) -> Option<Peer> {
        let peer = self.map.remove(id)?;
        self.unindex(*id, peer.cfg.peer_addr);
        Some(peer)
    }

    /// Gives `id` a new configuration (its address may have changed). False if unknown.
    pub(super) fn set_cfg(&mut self, id: PeerId, cfg: Arc<PeerConfig>) -> bool {
        let Some(old) = self.map.get(&id).map(|p| p.cfg.peer_addr) else {
            return false;
        };
        self.unindex(id, old);
        self.index(id, cfg.peer_addr);
        if let Some(p) = self.map.get_mut(&id) {
            p.cfg = cfg;
        }
        true
    }

    /// The peer a responder negotiation from `ip` is for: of the peers with that address the
    /// first (lowest ID), else the first dynamic one.
    pub(super) fn for_address(&self, ip: IpAddr) -> Option<PeerId> {
        self.by_addr
            .get(&ip)
            .and_then(|ids| ids.first())
            .or_else(|| self.dynamic.first())
            .copied()
    }

    fn index(&mut self, id: PeerId, addr: Option<IpAddr>) {
        match addr {
            Some(ip) => {
                self.by_addr.entry(ip).or_default().insert(id);
            }
            None => {
                self.dynamic.insert(id);
            }
        }
    }

    fn unindex(&mut self, id: PeerId, addr: Option<IpAddr>) {
        match addr {
            Some(ip) => {
                if let Some(ids) = self.by_addr.get_mut(&ip) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.by_addr.remove(&ip);
                    }
                }
            }
            None => {
                self.dynamic.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Side;
    use crate::v1::Mode;
    use crate::v1::tests::{cfg, settings};

    fn peer(addr: Option<IpAddr>) -> Peer {
        let mut c = cfg(Side::A);
        c.peer_addr = addr;
        Peer {
            cfg: Arc::new(c),
            settings: settings(Mode::Main),
        }
    }

    /// What `for_address` must answer: the walk the engine used to make.
    fn walk(p: &Peers, ip: IpAddr) -> Option<PeerId> {
        p.map
            .iter()
            .find(|(_, q)| q.cfg.peer_addr == Some(ip))
            .or_else(|| p.map.iter().find(|(_, q)| q.cfg.peer_addr.is_none()))
            .map(|(id, _)| *id)
    }

    #[test]
    fn the_index_answers_as_a_walk_over_every_peer_would() {
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        let mut p = Peers::default();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for step in 0..5_000 {
            let id = PeerId((next() % 40) as u32);
            let addr = match next() % 5 {
                0 => None,
                n => Some(ip((n * 2) as u8)),
            };
            match next() % 4 {
                0 => {
                    p.remove(&id);
                }
                1 => {
                    p.set_cfg(id, Arc::clone(&peer(addr).cfg));
                }
                _ => p.insert(id, peer(addr)),
            }
            for n in 0..12 {
                assert_eq!(
                    p.for_address(ip(n)),
                    walk(&p, ip(n)),
                    "step {step}, {}",
                    ip(n)
                );
            }
            let indexed: usize = p.by_addr.values().map(BTreeSet::len).sum();
            assert_eq!(indexed + p.dynamic.len(), p.len(), "step {step}");
        }
    }

    #[test]
    fn set_cfg_of_an_unknown_peer_changes_nothing() {
        let mut p = Peers::default();
        assert!(!p.set_cfg(PeerId(7), Arc::clone(&peer(None).cfg)));
        assert_eq!(p.for_address(IpAddr::from([192, 0, 2, 1])), None);
        assert_eq!(p.len(), 0);
    }
}
