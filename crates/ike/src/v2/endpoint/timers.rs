//! Timers: retransmissions, liveness, half-open expiry, soft and hard lifetimes, clean-up.

use super::*;

impl Core {
    /// An SA is gone for good (it is out of the table): its index entries and aliases go,
    /// and its last response stays behind as a tombstone.
    pub(super) fn forget(&mut self, now: Instant, sa: &mut IkeSa) {
        self.bury(now, sa);
        // Addresses leased to the peer go back to the pool (offline, kept for its identity).
        self.cp_release(sa);
        self.init_index.remove(&(sa.spi_i, sa.remote));
        let ours = sa.our_spi();
        if let Some(k) = self.init_rev.remove(&ours)
            && self.init_index.get(&k) == Some(&ours)
        {
            self.init_index.remove(&k);
        }
        // Aliases pointing at it (or at nothing any more) go too.
        for from in self.alias_rev.remove(&ours).unwrap_or_default() {
            if self.aliases.get(&from) == Some(&ours) {
                self.aliases.remove(&from);
            }
        }
        // A re-authentication that failed: the old SA may try again at its next deadline.
        if let Some(old) = sa.replaces {
            self.actions.push(Action::Unreplace(old));
        }
    }

    /// The next deadline of an SA's lifetimes and deferred work.
    pub(super) fn sa_deadlines(sa: &IkeSa) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut add = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if !sa.established() {
            return None;
        }
        if let Life::Rekeyed(at) = sa.life {
            add(Some(at));
            return t;
        }
        add(sa.cleanup_at);
        add(sa.followup.as_ref().map(|f| f.expires));
        add(sa.hard);
        if sa.life == Life::Normal && !sa.being_replaced {
            add(sa.soft);
        }
        for c in &sa.children {
            add(c.hard);
            if c.state == ChildState::Installed {
                add(c.soft);
            }
            add(c.switch.map(|s| s.by));
        }
        for (at, _) in &sa.deferred {
            add(Some(*at));
        }
        t
    }

    pub(super) fn sa_timeout(&mut self, now: Instant, sa: &mut IkeSa) -> Keep {
        if let State::HalfOpen { expires, .. } = &sa.state
            && now >= *expires
        {
            return Keep::No;
        }
        if let Life::Rekeyed(at) = sa.life
            && now >= at
        {
            // The rekey initiator never deleted it: forget it quietly (its children moved).
            return Keep::No;
        }
        if sa.cleanup_at.is_some_and(|t| now >= t) {
            // A redundant SA of a collision we won that the peer did not delete (§2.8.2).
            self.delete_now(sa, Some(DownReason::LocalDelete));
            return Keep::No;
        }
        let refused = match &sa.state {
            State::InitSent(st) => st.refused,
            _ => None,
        };
        match sa.requests.handle_timeout(now) {
            RequestTimeout::Nothing => {}
            // An error answer to IKE_SA_INIT and no genuine answer since (§2.21.1).
            RequestTimeout::Retransmit(_) | RequestTimeout::GiveUp { .. }
                if let Some(notify) = refused =>
            {
                let cfg = &self.peers[&sa.peer];
                let name = cfg.name.clone();
                let why = if notify == NotifyType::NO_PROPOSAL_CHOSEN {
                    Failure::OfferRefused(OfferRefused {
                        offered: cfg.ike_proposals.clone(),
                    })
                } else {
                    Failure::PeerRefused { notify }
                };
                self.failed_in(ExchangeType::IKE_SA_INIT, Some(sa), name, false, why);
                return Keep::No;
            }
            RequestTimeout::Retransmit(datagrams) => {
                if matches!(sa.pending, Some(Pending::Work(Work::Liveness))) {
                    *self.liveness_misses.entry(sa.peer).or_insert(0) += 1;
                }
                for d in datagrams {
                    self.send(sa.local, sa.remote, &d);
                }
            }
            RequestTimeout::GiveUp { hints, .. } => {
                let retransmissions = match sa.pending {
                    Some(Pending::Work(Work::Liveness)) => {
                        // Its last try went unanswered too.
                        *self.liveness_misses.entry(sa.peer).or_insert(0) += 1;
                        sa.liveness.policy().map_or(0, |p| p.tries)
                    }
                    _ => self.config.retransmit.tries,
                };
                let reason = if hints > 0 {
                    DownReason::PeerLostSa
                } else {
                    DownReason::PeerUnreachable
                };
                self.peer_dead(sa, retransmissions, reason);
                return Keep::No;
            }
        }
        if sa.established() && !matches!(sa.life, Life::Rekeyed(_)) {
            self.followup_timeout(now, sa);
            self.lifetime_timeout(now, sa);
        }
        if sa.established()
            && !matches!(sa.life, Life::Rekeyed(_))
            && !sa.requests.busy()
            && sa.queue.is_empty()
            && sa.liveness.due(now)
        {
            // R-V2-3: nothing received for the interval.
            let _ = self.start_informational(now, sa, Work::Liveness);
        }
        self.pump(now, sa);
        Keep::Yes
    }

    /// Lifetimes (R-V2-10, R-V2-11) and deferred work.
    pub(super) fn lifetime_timeout(&mut self, now: Instant, sa: &mut IkeSa) {
        // Switches whose proof never came (R-V2-10 fallback), and those of pairs that
        // expire now: traffic leaves an expiring pair first.
        let expiring: Vec<Spi> = sa
            .children
            .iter()
            .filter(|c| c.switch.is_some() && c.hard.is_some_and(|t| now >= t))
            .map(|c| c.inbound)
            .collect();
        for old in expiring {
            self.flush_switch(sa, old);
        }
        self.flush_switches(sa, None, Some(now));
        // Deferred work that is due.
        let mut i = 0;
        while i < sa.deferred.len() {
            if sa.deferred[i].0 <= now {
                let (_, w) = sa.deferred.swap_remove(i);
                sa.push_work(w);
            } else {
                i += 1;
            }
        }
        if sa.hard.is_some_and(|t| now >= t) {
            sa.hard = None;
            sa.soft = None;
            if !sa.deleting() && !sa.queue.contains(&Work::DeleteIke) {
                sa.push_work_front(Work::DeleteIke);
            }
            return;
        }
        if sa.life == Life::Normal && !sa.being_replaced && sa.soft.is_some_and(|t| now >= t) {
            sa.soft = None;
            let m = self.lifetimes_of(sa.peer).reauth_multiple.unwrap_or(0);
            if m > 0 && sa.rekeys_since_auth + 1 >= m {
                let reason = ReauthReason::AuthenticationMultiple { multiple: m };
                self.actions.push(Action::Reauthenticate {
                    old: sa.our_spi(),
                    reason,
                });
            } else if !sa.queue.iter().any(|w| matches!(w, Work::RekeyIke { .. })) {
                sa.push_work(Work::RekeyIke {
                    group: None,
                    tries: 0,
                });
            }
        }
        let handle = IkeSaHandle(sa.our_spi());
        let mut expired = Vec::new();
        let mut rekey = Vec::new();
        for c in &mut sa.children {
            if c.hard.is_some_and(|t| now >= t) {
                c.hard = None;
                c.soft = None;
                expired.push((c.inbound, c.outbound));
            } else if c.state == ChildState::Installed && c.soft.is_some_and(|t| now >= t) {
                c.soft = None;
                rekey.push((c.policy, c.inbound));
            }
        }
        for (inbound, outbound) in expired {
            // The data plane must stop using it now; the delete exchange follows.
            self.event(Event::ChildSaExpired {
                ike_sa: handle,
                inbound_spi: inbound,
                outbound_spi: outbound,
            });
            if sa.pending_delete_of(inbound) {
                continue;
            }
            sa.push_work_front(Work::DeleteChild(inbound));
        }
        for (policy, inbound) in rekey {
            sa.push_work(Work::CreateChild {
                policy,
                rekey: Some(inbound),
                group: None,
                tries: 0,
            });
        }
    }

    /// All retransmissions failed: the SA and its children are gone; maybe start again.
    pub(super) fn peer_dead(&mut self, sa: &mut IkeSa, retransmissions: u32, reason: DownReason) {
        let name = self
            .peers
            .get(&sa.peer)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        if sa.established() {
            let was_announced = sa.announced;
            self.ike_down(sa, reason);
            if !was_announced {
                return;
            }
        } else {
            let exchange = if matches!(sa.state, State::InitSent(_)) {
                ExchangeType::IKE_SA_INIT
            } else if matches!(sa.state, State::IntSent(_)) {
                ExchangeType::IKE_INTERMEDIATE
            } else {
                ExchangeType::IKE_AUTH
            };
            self.failed_in(
                exchange,
                Some(sa),
                name,
                false,
                Failure::PeerUnreachable { retransmissions },
            );
        }
        // Restarted at the configured address: an FQDN peer that moved is followed there.
        let restart = self
            .peers
            .get(&sa.peer)
            .filter(|p| p.restart_on_dead_peer)
            .and_then(|p| p.peer_addr);
        if let Some(addr) = restart
            && sa.initiator
        {
            let local = SocketAddr::new(sa.local.ip(), IKE_PORT);
            let remote = SocketAddr::new(addr, IKE_PORT);
            self.actions.push(Action::Initiate {
                peer: sa.peer,
                local,
                remote,
            });
        }
    }

    pub(super) fn children_down(&mut self, sa: &mut IkeSa, reason: DownReason) {
        let handle = IkeSaHandle(sa.our_spi());
        for c in std::mem::take(&mut sa.children) {
            self.event(Event::ChildSaDown {
                ike_sa: handle,
                inbound_spi: c.inbound,
                outbound_spi: c.outbound,
                reason: reason.clone(),
            });
        }
    }

    // -----------------------------------------------------------------------------------
    // Datagrams
}

impl Endpoint {
    /// Handles everything due at `now`: retransmissions, liveness checks, expiry of
    /// half-open SAs, lifetimes (rekey, re-authentication, expiry), cookie secret rotation.
    ///
    /// Only the SAs with a deadline at or before `now` are visited.
    pub fn handle_timeout(&mut self, now: Instant) {
        debug_assert!(self.core.actions.is_empty(), "actions left over");
        let core = &mut self.core;
        core.cookies.handle_timeout(now, &mut *core.rng);
        let half_open = self.sas.half_open_count();
        if let Some(report) = self.core.guard.handle_timeout(now, half_open) {
            self.core.event(Event::HalfOpenPressure(report));
        }
        self.core.tombstones.expire(now);
        for spi in self.sas.due(now) {
            let Some(sa) = self.sas.get_mut(&spi) else {
                continue;
            };
            #[cfg(test)]
            {
                self.core.timeout_visits += 1;
            }
            if self.core.sa_timeout(now, sa) == Keep::No
                && let Some(mut sa) = self.sas.remove(&spi)
            {
                if sa.half_open() {
                    // Its IKE_AUTH never came: the address wasted a half-open slot.
                    self.core.guard.wasted(now, sa.remote.ip());
                }
                self.core.forget(now, &mut sa);
            }
            self.run_actions(now);
        }
    }
}
