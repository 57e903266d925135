//! Peers that come, go and change while the endpoint runs (a live reload, R-OPS-4).
//!
//! Peer and policy IDs are never reused ([`PeerId`]), so removing or replacing one peer never
//! renumbers another, and its SAs are never touched:
//!
//! - [`Endpoint::remove_peer`] deletes the peer's IKE SAs at once (one INFORMATIONAL with a
//!   Delete payload each, as at shutdown; no wait for the answer, the SA is gone here) and
//!   forgets the configuration. A changed gateway is removed and added again
//!   ([`Endpoint::add_peer`], a new ID): its IKE SA is deleted and re-created.
//! - [`Endpoint::update_policies`] replaces a peer's policies and keeps its IKE SAs: a policy
//!   with the same name and selectors keeps its ID; when its proposals or lifetime changed,
//!   its Child SAs are rekeyed with the new proposals (make-before-break, RFC 7296 §2.8); a
//!   policy that is gone, or whose selectors changed, has its Child SAs deleted (the new
//!   version is a new policy with a new ID, negotiated when the application asks).

use super::*;

/// What [`Endpoint::update_policies`] did with each policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyUpdate {
    /// The same as before (same ID): their Child SAs are untouched.
    pub unchanged: Vec<PolicyId>,
    /// The same selectors with other proposals or lifetimes (same ID), with how many of
    /// their Child SAs are being rekeyed with the new proposals.
    pub rekeyed: Vec<(PolicyId, usize)>,
    /// Gone, or changed selectors (old ID), with how many of their Child SAs are being
    /// deleted.
    pub removed: Vec<(PolicyId, usize)>,
    /// New, or the new version of one whose selectors changed (new ID): no Child SA yet.
    pub added: Vec<PolicyId>,
}

impl Endpoint {
    /// Removes peer configuration `peer`: each of its established IKE SAs is deleted on the
    /// peer (an INFORMATIONAL with a Delete payload, sent once) and here at once, with
    /// [`Event::IkeSaDown`] and [`Event::ChildSaDown`] for the SAs the application knows;
    /// its negotiations in progress are dropped. Its ID is never given to another peer.
    /// Returns how many IKE SAs were deleted on the peer.
    pub fn remove_peer(&mut self, now: Instant, peer: PeerId) -> Result<usize, CommandError> {
        if !self.peers.contains_key(&peer) {
            return Err(CommandError::NoSuchPeer);
        }
        let spis: Vec<IkeSpi> = if self.sas.has_peer(peer) {
            self.sas
                .iter()
                .filter(|(_, s)| s.peer == peer)
                .map(|(k, _)| *k)
                .collect()
        } else {
            Vec::new()
        };
        let mut deleted = 0;
        for spi in spis {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            if sa.established() && sa.keys.is_some() {
                self.delete_now(&mut sa, Some(DownReason::LocalDelete));
                deleted += 1;
            } else {
                self.ike_down(&mut sa, DownReason::LocalDelete);
            }
            self.forget(now, &mut sa);
        }
        self.peers.remove(&peer);
        self.v1_only.remove(&peer);
        self.lifetimes.remove(&peer);
        self.certs.remove(&peer);
        self.cp.remove(&peer);
        Ok(deleted)
    }

    /// Replaces the policies of peer configuration `peer` (its other settings stay), keeping
    /// its IKE SAs. Policies are matched by name: see the module docs and [`PolicyUpdate`].
    /// The new policies' IDs are set here (the IDs in `policies` are ignored).
    pub fn update_policies(
        &mut self,
        now: Instant,
        peer: PeerId,
        policies: Vec<ChildPolicy>,
    ) -> Result<PolicyUpdate, CommandError> {
        let old = std::sync::Arc::clone(self.peers.get(&peer).ok_or(CommandError::NoSuchPeer)?);
        let mut update = PolicyUpdate::default();
        let mut rekey = BTreeSet::new();
        let mut new = Vec::with_capacity(policies.len());
        for mut p in policies {
            match old.policies.iter().find(|o| o.ts == p.ts) {
                Some(o) => {
                    p.id = o.id;
                    if *o == p {
                        update.unchanged.push(p.id);
                    } else {
                        rekey.insert(p.id);
                    }
                }
                None => {
                    p.id = PolicyId(self.next_ids.1);
                    self.next_ids.1 += 1;
                    update.added.push(p.id);
                }
            }
            new.push(p);
        }
        let gone: BTreeSet<PolicyId> = old
            .policies
            .iter()
            .map(|o| o.id)
            .filter(|id| !new.iter().any(|p| p.id == *id))
            .collect();
        let mut cfg = (*old).clone();
        cfg.policies = new;
        self.peers.insert(peer, std::sync::Arc::new(cfg));
        // The Child SAs in use of the policies that changed.
        let mut work: Vec<(IkeSpi, Spi, PolicyId)> = Vec::new();
        if self.sas.has_peer(peer) {
            for (spi, sa) in self
                .sas
                .iter()
                .filter(|(_, s)| s.peer == peer && s.usable())
            {
                for c in sa
                    .children
                    .iter()
                    .filter(|c| c.state == ChildState::Installed)
                {
                    if rekey.contains(&c.policy) || gone.contains(&c.policy) {
                        work.push((*spi, c.inbound, c.policy));
                    }
                }
            }
        }
        let mut rekeyed: BTreeMap<PolicyId, usize> = rekey.iter().map(|p| (*p, 0)).collect();
        let mut removed: BTreeMap<PolicyId, usize> = gone.iter().map(|p| (*p, 0)).collect();
        for (spi, inbound, policy) in work {
            let h = IkeSaHandle(spi);
            if gone.contains(&policy) {
                if self.delete_child_sa(now, h, inbound).is_ok() {
                    *removed.entry(policy).or_default() += 1;
                }
            } else if self.rekey_child_sa(now, h, inbound).is_ok() {
                *rekeyed.entry(policy).or_default() += 1;
            }
        }
        update.rekeyed = rekeyed.into_iter().collect();
        update.removed = removed.into_iter().collect();
        Ok(update)
    }

    /// Points peer configuration `peer` at `addr` (an FQDN peer-address resolved anew,
    /// R-CFG-4): new negotiations go there, a peer that starts one from there is recognized,
    /// and a dead peer is restarted there. Established SAs keep the address they run on (they
    /// stay up as long as the peer answers there). Returns the address it had.
    pub fn set_peer_address(
        &mut self,
        peer: PeerId,
        addr: Option<std::net::IpAddr>,
    ) -> Result<Option<std::net::IpAddr>, CommandError> {
        let cfg = self.peers.get_mut(&peer).ok_or(CommandError::NoSuchPeer)?;
        let old = cfg.peer_addr;
        if old != addr {
            let mut moved = PeerConfig::clone(cfg);
            moved.peer_addr = addr;
            *cfg = std::sync::Arc::new(moved);
        }
        Ok(old)
    }

    /// The shared configuration of peer `peer` (for the IKEv1 engine, which serves the same
    /// peers with the same configuration).
    pub(crate) fn peer_arc(&self, peer: PeerId) -> Option<std::sync::Arc<PeerConfig>> {
        self.peers.get(&peer).cloned()
    }
}
