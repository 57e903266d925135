//! The endpoint's side of an exchange: it lends the exchange its SA (with what the exchange
//! may need to know of the others), then carries out the cross-SA work the exchange left
//! ([`Action`]) and keeps or forgets the SA.

use super::*;

impl Endpoint {
    /// An IKE SPI that neither an SA nor a tombstone holds.
    pub(super) fn unused_ike_spi(&mut self) -> IkeSpi {
        loop {
            let spi = self.core.new_ike_spi();
            if !self.sas.contains_key(&spi) {
                return spi;
            }
        }
    }

    /// Lends SA `spi` to an exchange: tells the core what it may need to know of the other
    /// SAs, and for the successor of a crossing IKE SA rekey takes the old SA out alongside.
    pub(super) fn lend(&mut self, spi: IkeSpi) -> Option<(&mut IkeSa, &mut Core)> {
        let sa = self.sas.get(&spi)?;
        let peer = sa.peer;
        let crossing = !sa.announced && sa.established();
        let ours = spi.0;
        let crossed = if crossing {
            // Rare (a new SA the peer made, before it is announced): a walk is fine here.
            self.sas.iter().find_map(|(k, o)| match &o.pending {
                Some(Pending::IkeRekey(r))
                    if r.collision.as_ref().is_some_and(|c| c.created == ours) =>
                {
                    Some(*k)
                }
                _ => None,
            })
        } else {
            None
        };
        let crossed = crossed.and_then(|k| Some((k, self.sas.remove(&k)?)));
        self.core.lent = Lent {
            peer_has_others: self.sas.count_of_peer(peer) > 1,
            crossed,
        };
        let sa = self.sas.get_mut(&spi)?;
        Some((sa, &mut self.core))
    }

    /// After an exchange on SA `spi`: puts back what was lent alongside, carries out the
    /// exchange's cross-SA work, then runs the SA's queued work or forgets it.
    pub(super) fn settle(&mut self, now: Instant, spi: IkeSpi, keep: Keep) {
        if let Some((k, o)) = self.core.lent.crossed.take() {
            self.sas.insert(k, o);
        }
        self.core.lent = Lent::default();
        self.run_actions(now);
        match keep {
            Keep::Yes => {
                if let Some(sa) = self.sas.get_mut(&spi) {
                    self.core.pump(now, sa);
                }
                self.run_actions(now);
            }
            Keep::No => {
                if let Some(mut sa) = self.sas.remove(&spi) {
                    self.core.forget(now, &mut sa);
                }
                self.run_actions(now);
            }
        }
    }

    /// Carries out the cross-SA work the exchanges left, in order (work it causes included).
    pub(super) fn run_actions(&mut self, now: Instant) {
        // Each action touches at most two SAs and makes no more actions than SAs it moves
        // work to; the bound only guards against a bug looping forever.
        for _ in 0..1024 {
            if self.core.actions.is_empty() {
                return;
            }
            for a in std::mem::take(&mut self.core.actions) {
                self.act(now, a);
            }
        }
        debug_assert!(self.core.actions.is_empty(), "actions keep coming");
        self.core.actions.clear();
    }

    fn act(&mut self, now: Instant, a: Action) {
        match a {
            Action::Insert(spi, sa) => {
                if self.sas.contains_key(&spi) {
                    // One chance in 2^64 per SA: the peer learns of the loss by an
                    // INVALID_IKE_SPI for the new SA and keeps the old one until it expires.
                    return;
                }
                self.sas.insert(spi, sa);
            }
            Action::MoveTo {
                old,
                new,
                then_delete_old,
            } => {
                let Some(mut o) = self.sas.remove(&old) else {
                    return;
                };
                self.move_to(now, &mut o, new);
                if then_delete_old {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.18
                    //# After the new equivalent IKE SA is created, the initiator deletes the
                    //# old IKE SA
                    o.push_work_front(Work::DeleteIke);
                }
                self.sas.insert(old, o);
            }
            Action::Pump(spi) => {
                if let Some(sa) = self.sas.get_mut(&spi) {
                    self.core.pump(now, sa);
                }
            }
            Action::DeleteIke(spi) => {
                if let Some(o) = self.sas.get_mut(&spi) {
                    o.push_work_front(Work::DeleteIke);
                    self.core.pump(now, o);
                }
            }
            Action::Unreplace(spi) => {
                self.sas.update(&spi, |o| o.being_replaced = false);
            }
            Action::Reauthenticate { old, reason } => {
                let _ = self.start_reauth(now, old, reason);
            }
            Action::Initiate {
                peer,
                local,
                remote,
            } => {
                let _ = self.initiate(now, peer, local, remote);
            }
            Action::CleanupAt(spi, at) => {
                self.sas.update(&spi, |p| p.cleanup_at = Some(at));
            }
            Action::Established {
                spi,
                peer_id,
                initial_contact,
            } => self.established_with(now, spi, &peer_id, initial_contact),
        }
    }

    /// The IKE SA `old` was replaced by the one with our SPI `new` (already in the table):
    /// its Child SAs and queued work move there (§2.18), and the application learns the new
    /// handle. `old` becomes `Rekeyed`.
    pub(super) fn move_to(&mut self, now: Instant, old: &mut IkeSa, new: IkeSpi) {
        let Some(n) = self.sas.get_mut(&new) else {
            // The new SA is gone too: so are the children.
            self.core.ike_down(old, DownReason::IkeSaGone);
            return;
        };
        self.core.move_into(now, old, n);
        self.core.pump(now, n);
    }

    /// An IKE SA came up with an authenticated peer `peer_id`: the peer's other SAs go if it
    /// said INITIAL_CONTACT, and of two SAs made by crossing IKE_SA_INITs one is deleted.
    fn established_with(
        &mut self,
        now: Instant,
        spi: IkeSpi,
        peer_id: &Identity,
        initial_contact: bool,
    ) {
        let Some(peer) = self.sas.get(&spi).map(|sa| sa.peer) else {
            return;
        };
        if initial_contact {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.4
            //# the receiving node may then delete any other SAs it has to the same
            //# authenticated identity without waiting for a timeout.
            let stale: Vec<IkeSpi> = self
                .sas
                .with_identity(peer, peer_id)
                .into_iter()
                .filter(|k| *k != spi && self.sas.get(k).is_some_and(|o| o.established()))
                .collect();
            for k in stale {
                if let Some(mut o) = self.sas.remove(&k) {
                    self.core.delete_now(&mut o, Some(DownReason::PeerDelete));
                    self.core.forget(now, &mut o);
                }
            }
        }
        // A crossing IKE_SA_INIT (both sides initiated at once) leaves two IKE SAs whose
        // negotiations overlapped. As for rekey collisions (§2.8.1), the one whose creating
        // exchange has the lowest nonce is redundant and its initiator deletes it; both
        // ends see the same nonces, so they agree on which one survives.
        // Only SAs with the same authenticated peer can be such duplicates (an indexed lookup,
        // not a walk over every SA).
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let (created, alone) = (sa.created, sa.replaces.is_none() && !sa.being_replaced);
        let dups: Vec<IkeSpi> = self
            .sas
            .with_identity(peer, peer_id)
            .into_iter()
            .filter(|k| *k != spi)
            .filter(|k| {
                self.sas.get(k).is_some_and(|o| {
                    o.peer == peer
                        && o.announced
                        && o.usable()
                        && o.replaces.is_none()
                        && alone
                        && !o.being_replaced
                        && o.created < now
                        && o.established_at.is_some_and(|t| created < t)
                })
            })
            .collect();
        for k in dups {
            let Some(mut o) = self.sas.remove(&k) else {
                continue;
            };
            let Some(sa) = self.sas.get_mut(&spi) else {
                self.sas.insert(k, o);
                return;
            };
            if o.nonce < sa.nonce {
                if o.initiator {
                    o.push_work_front(Work::DeleteIke);
                    self.core.pump(now, &mut o);
                }
            } else if sa.initiator && !sa.queue.contains(&Work::DeleteIke) {
                sa.push_work_front(Work::DeleteIke);
            }
            self.sas.insert(k, o);
        }
    }
}
