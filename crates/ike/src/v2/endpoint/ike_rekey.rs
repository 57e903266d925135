//! CREATE_CHILD_SA for the IKE SA (RFC 7296 §1.3.2, §2.18): new SPIs and keys, Child SAs moved to the new IKE SA, collisions.

use super::*;

impl Core {
    pub(super) fn move_into(&mut self, now: Instant, old: &mut IkeSa, n: &mut IkeSa) {
        let new = n.our_spi();
        for mut c in std::mem::take(&mut old.children) {
            // Message IDs are per IKE SA: only the DELETE or the deadline release it now.
            if let Some(s) = &mut c.switch {
                s.made_in = None;
            }
            if c.state == ChildState::Rekeying {
                c.state = ChildState::Installed;
            }
            n.push_child(c);
        }
        for w in std::mem::take(&mut old.queue) {
            if !matches!(w, Work::DeleteIke | Work::RekeyIke { .. } | Work::Liveness) {
                n.push_work(w);
            }
        }
        for (at, w) in std::mem::take(&mut old.deferred) {
            if !matches!(w, Work::RekeyIke { .. }) && n.deferred.len() < MAX_QUEUED_WORK {
                n.deferred.push((at, w));
            }
        }
        n.cleanup_at = None;
        n.peer_id = old.peer_id.clone();
        n.auth = old.auth.clone();
        // The configuration payload's addresses (and leases) go with the IKE SA (§2.19).
        if n.cp.is_none() {
            n.cp = old.cp.take();
        }
        n.rekeys_since_auth = old.rekeys_since_auth + 1;
        n.established_at = old.established_at;
        n.created = old.created;
        n.replaces = old.replaces.take();
        n.reauth_reason = old.reauth_reason.take();
        n.being_replaced = old.being_replaced;
        if !n.announced {
            n.announced = true;
            self.set_ike_lifetimes(now, n);
            if let Some(id) = n.peer_id.clone() {
                let info = self.info(n, id);
                self.event(Event::IkeSaRekeyed {
                    old: IkeSaHandle(old.our_spi()),
                    new: info,
                });
            }
        }
        old.announced = false;
        old.life = Life::Rekeyed(now + self.config.retransmit.total());
        old.soft = None;
        old.hard = None;
        let old_spi = old.our_spi();
        // Handles that pointed at the old SA point at the new one.
        let moved = self.alias_rev.remove(&old_spi).unwrap_or_default();
        for from in &moved {
            self.aliases.insert(*from, new);
        }
        if !moved.is_empty() {
            self.alias_rev.entry(new).or_default().extend(moved);
        }
        if self.aliases.len() < MAX_ALIASES {
            if let Some(prev) = self.aliases.insert(old_spi, new)
                && let Some(set) = self.alias_rev.get_mut(&prev)
            {
                set.remove(&old_spi);
            }
            self.alias_rev.entry(new).or_default().insert(old_spi);
        }
    }

    pub(super) fn start_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        group: Option<DhGroup>,
        tries: u8,
    ) -> Result<(), CommandError> {
        if sa.life != Life::Normal || sa.being_replaced || !sa.announced {
            return Err(CommandError::Busy);
        }
        let cfg = &self.peers[&sa.peer];
        // With the additional key exchanges of the IKE proposals (RFC 9370 §2.2.4): when the
        // peer picks them, IKE_FOLLOWUP_KE exchanges follow (followup.rs).
        let proposals = cfg.ike_proposals.clone();
        let g = group
            .or_else(|| first_group(&proposals))
            .ok_or_else(|| CommandError::Config("IKE proposals name no DH group".into()))?;
        let kex = self
            .provider
            .key_exchange(g.0)
            .and_then(|k| k.start(&mut *self.rng))
            .map_err(|e| CommandError::Config(e.to_string()))?;
        let spi = self.new_ike_spi();
        let ni = self.random_bytes(NONCE_LEN);
        let proposals: Vec<Proposal> = proposals
            .iter()
            .map(|p| Proposal {
                spi: spi.0.to_be_bytes().to_vec(),
                ..p.clone()
            })
            .collect();
        let inner = [
            Payload::new(PayloadBody::Sa(proposals_to_wire(&proposals))),
            Payload::new(PayloadBody::Nonce(&ni)),
            Payload::new(PayloadBody::Ke(KeyExchange {
                group: g,
                data: kex.public_key(),
            })),
        ];
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::CREATE_CHILD_SA, id, false);
        if sa.keys.is_none() {
            return Err(CommandError::Busy);
        }
        let msgs = sa
            .protect(&mut *self.rng, &self.config, header, &inner)
            .map_err(|e| CommandError::Config(e.to_string()))?;
        for m in &msgs {
            self.send(sa.local, sa.remote, m);
        }
        sa.requests.start(now, msgs, self.config.retransmit);
        sa.life = Life::Rekeying;
        sa.pending = Some(Pending::IkeRekey(Box::new(IkeRekeyRequest {
            spi,
            ni,
            kex,
            proposals,
            tries,
            collision: None,
        })));
        Ok(())
    }

    /// A new IKE SA made by a rekey exchange (either role), not yet in the map.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rekeyed_sa(
        &self,
        now: Instant,
        old: &IkeSa,
        initiator: bool,
        spi_i: IkeSpi,
        spi_r: IkeSpi,
        keys: IkeKeys,
        proposal: Selected,
        nonce: Vec<u8>,
    ) -> IkeSa {
        IkeSa {
            peer: old.peer,
            initiator,
            spi_i,
            spi_r,
            local: old.local,
            remote: old.remote,
            state: State::Established,
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.18
            //# The new IKE SA MUST reset its message counters to 0.
            requests: Requests::new(MessageId(0)),
            responses: Responses::new(MessageId(0)),
            liveness: Liveness::new(self.peers[&old.peer].liveness, now),
            pending: None,
            queue: VecDeque::new(),
            keys: Some(keys),
            proposal: Some(proposal),
            nat: old.nat,
            children: Vec::new(),
            life: Life::Normal,
            peer_id: old.peer_id.clone(),
            auth: AuthInfo::default(),
            announced: false,
            nonce,
            created: now,
            established_at: Some(now),
            soft: None,
            hard: None,
            rekeys_since_auth: old.rekeys_since_auth + 1,
            replaces: None,
            reauth_reason: None,
            being_replaced: false,
            deferred: Vec::new(),
            cleanup_at: None,
            peer_seen: false,
            // Negotiated in the IKE_SA_INIT of the first IKE SA, for its successors too.
            fragmentation: old.fragmentation,
            frags: Default::default(),
            fetching: None,
            cp: None,
            followup: None,
        }
    }

    /// Responder: CREATE_CHILD_SA that rekeys the IKE SA.
    pub(super) fn handle_ike_rekey_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        offered: &[(u8, Proposal)],
        ni: &[u8],
        ke: Option<KeyExchange<'_>>,
    ) -> Keep {
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.2
        //# If a peer receives a request to rekey an IKE SA that it is currently trying to
        //# close, it SHOULD reply with TEMPORARY_FAILURE.
        // Likewise while one of our Child SA exchanges is in flight (its result would land
        // on the old IKE SA), as strongSwan does.
        if matches!(sa.life, Life::Rekeyed(_))
            || sa.deleting()
            || matches!(
                sa.pending,
                Some(Pending::Child(_) | Pending::Work(Work::DeleteChild(_)))
            )
            // RFC 9370 §2.2.4: our own IKE_FOLLOWUP_KE exchanges have started.
            || matches!(&sa.pending, Some(Pending::Followup(_)))
        {
            self.child_error(sa, header, Rejection::Busy);
            return Keep::Yes;
        }
        let cfg = self.peers[&sa.peer].clone();
        let ours = cfg.ike_proposals.clone();
        let sel = match proposal::select(offered, &ours, SelectOptions::default()) {
            Ok(s) => s,
            Err(e) => {
                self.child_error(sa, header, Rejection::NoProposal);
                self.failed_in(
                    ExchangeType::CREATE_CHILD_SA,
                    Some(sa),
                    cfg.name.clone(),
                    true,
                    Failure::NoProposalChosen(e),
                );
                return Keep::Yes;
            }
        };
        let Some(peer_spi) = <[u8; 8]>::try_from(sel.spi.as_slice())
            .ok()
            .map(|b| IkeSpi(u64::from_be_bytes(b)))
            .filter(|s| s.0 != 0)
        else {
            self.child_error(sa, header, Rejection::Malformed);
            return Keep::Yes;
        };
        let Some(g) = sel.ke else {
            self.child_error(sa, header, Rejection::NoProposal);
            return Keep::Yes;
        };
        let kx = match ke {
            Some(k) if k.group == g => match self
                .provider
                .key_exchange(g.0)
                .and_then(|alg| alg.respond(&mut *self.rng, k.data))
            {
                Ok(kx) => kx,
                Err(_) => {
                    self.child_error(sa, header, Rejection::Malformed);
                    return Keep::Yes;
                }
            },
            _ => {
                self.child_error(sa, header, Rejection::WrongGroup(g));
                return Keep::Yes;
            }
        };
        let mut our_spi = self.new_ike_spi();
        while our_spi == sa.our_spi() {
            our_spi = self.new_ike_spi();
        }
        let nr = self.random_bytes(NONCE_LEN);
        if sel.additional().next().is_some() {
            // RFC 9370 §2.2.4: answered with the link; the new SA comes with the last
            // IKE_FOLLOWUP_KE exchange.
            let answer = sel.to_proposal(our_spi.0.to_be_bytes().to_vec());
            let makes = Makes::IkeRekey {
                sel: sel.clone(),
                peer_spi,
                our_spi,
            };
            let link = self.expect_followups(now, sa, makes, header.message_id, ni, &nr, kx.shared);
            let out = [
                Payload::new(PayloadBody::Sa(Sa {
                    proposals: vec![answer.to_wire(sel.number)],
                })),
                Payload::new(PayloadBody::Nonce(&nr)),
                Payload::new(PayloadBody::Ke(KeyExchange {
                    group: g,
                    data: &kx.public,
                })),
                Payload::new(PayloadBody::Notify(Notify::new(
                    NotifyType::ADDITIONAL_KEY_EXCHANGE,
                    &link,
                ))),
            ];
            self.respond(sa, header, &out);
            if let Some(Pending::IkeRekey(r)) = &mut sa.pending {
                // Crossing our own rekey: decided when our answer comes (followup.rs).
                r.collision = Some(Collision {
                    nonce: min_nonce(ni, &nr),
                    #[cfg(test)]
                    nonces: (ni.to_vec(), nr.clone()),
                    created: 0,
                    made_in: header.message_id,
                });
            }
            return Keep::Yes;
        }
        #[cfg(test)]
        self.kdf_inputs.push(("ike", kx.shared.expose().len()));
        let Some(old_keys) = &sa.keys else {
            return Keep::Yes;
        };
        let keys = match IkeKeys::derive_rekey(
            &self.provider,
            &sel,
            old_keys,
            &kx.shared,
            ni,
            &nr,
            peer_spi,
            our_spi,
            false,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.child_error(sa, header, Rejection::NoProposal);
                self.failed_in(
                    ExchangeType::CREATE_CHILD_SA,
                    Some(sa),
                    cfg.name.clone(),
                    true,
                    derivation("IKE SA", e),
                );
                return Keep::Yes;
            }
        };
        let answer = sel.to_proposal(our_spi.0.to_be_bytes().to_vec());
        let out = [
            Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![answer.to_wire(sel.number)],
            })),
            Payload::new(PayloadBody::Nonce(&nr)),
            Payload::new(PayloadBody::Ke(KeyExchange {
                group: g,
                data: &kx.public,
            })),
        ];
        self.respond(sa, header, &out);
        self.ike_rekeyed_as_responder(now, sa, header, ni, &nr, peer_spi, our_spi, keys, sel);
        Keep::Yes
    }

    /// Responder: the new IKE SA of the peer's rekey (its keys derived, the last answer
    /// sent) goes into the table and takes over, or waits for the outcome of a collision
    /// with our own rekey.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ike_rekeyed_as_responder(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        ni: &[u8],
        nr: &[u8],
        peer_spi: IkeSpi,
        our_spi: IkeSpi,
        keys: IkeKeys,
        sel: Selected,
    ) {
        let nonce = min_nonce(ni, nr);
        let new = self.rekeyed_sa(now, sa, false, peer_spi, our_spi, keys, sel, nonce.clone());
        self.actions.push(Action::Insert(our_spi, Box::new(new)));
        if let Some(Pending::IkeRekey(r)) = &mut sa.pending {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.2
            //# If a peer receives a request to rekey an IKE SA that it is currently
            //# rekeying, it SHOULD reply as usual, and SHOULD prepare to close redundant SAs
            //# later based on the nonces (see Section 2.8.2).
            r.collision = Some(Collision {
                nonce,
                #[cfg(test)]
                nonces: (ni.to_vec(), nr.to_vec()),
                created: our_spi.0,
                made_in: header.message_id,
            });
        } else {
            self.actions.push(Action::MoveTo {
                old: sa.our_spi(),
                new: our_spi,
                then_delete_old: false,
            });
        }
    }

    /// Our IKE SA rekey failed: if the peer's rekey crossed it and succeeded (§2.8.2), the
    /// peer's new SA takes over ours. Returns whether there was one.
    fn yield_to_crossed_rekey(&mut self, sa: &IkeSa, req: &IkeRekeyRequest) -> bool {
        let Some(col) = req.collision.as_ref().filter(|c| c.created != 0) else {
            return false;
        };
        self.actions.push(Action::MoveTo {
            old: sa.our_spi(),
            new: IkeSpi(col.created),
            then_delete_old: false,
        });
        true
    }

    /// Initiator: response to our IKE SA rekey.
    pub(super) fn handle_ike_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        mut req: IkeRekeyRequest,
        inner: &[Payload<'_>],
    ) {
        let cfg = self.peers[&sa.peer].clone();
        sa.life = Life::Normal;
        if let Some(n) = first_error_notify(inner) {
            if self.yield_to_crossed_rekey(sa, &req) {
                return;
            }
            let group = DhGroup(req.kex.group());
            match n {
                NotifyType::INVALID_KE_PAYLOAD => {
                    let wanted = find_notify(inner, NotifyType::INVALID_KE_PAYLOAD)
                        .and_then(|n| n.data.get(..2))
                        .map(|b| DhGroup(u16::from_be_bytes([b[0], b[1]])));
                    let ours = cfg.ike_proposals.iter().any(|p| {
                        p.of_type(TransformType::KE)
                            .any(|t| Some(DhGroup(t.id)) == wanted)
                    });
                    if let Some(g) = wanted
                        && ours
                        && g != group
                        && req.tries < MAX_TRIES
                    {
                        sa.push_work_front(Work::RekeyIke {
                            group: Some(g),
                            tries: req.tries + 1,
                        });
                        return;
                    }
                }
                NotifyType::TEMPORARY_FAILURE if req.tries < MAX_TRIES => {
                    let w = Work::RekeyIke {
                        group: Some(group),
                        tries: req.tries + 1,
                    };
                    self.defer(now, sa, w);
                    return;
                }
                _ => {}
            }
            self.failed_in(
                ExchangeType::CREATE_CHILD_SA,
                Some(sa),
                cfg.name.clone(),
                true,
                Failure::PeerRefused { notify: n },
            );
            return;
        }
        let Found {
            sa: sa_p,
            nonce,
            ke,
            ..
        } = Found::of(inner);
        let result = (|| {
            let bad = |what| Failure::PeerMisbehaved {
                exchange: ExchangeType::CREATE_CHILD_SA.into(),
                response: true,
                what,
            };
            let (Some(sa_p), Some(nr), Some(ke)) = (sa_p, nonce, ke) else {
                return Err(bad(Malformed::Missing("SA, Nr or KE")));
            };
            if !(16..=256).contains(&nr.len()) {
                return Err(bad(Malformed::NonceLength));
            }
            let (Some(w), 1) = (sa_p.proposals.first(), sa_p.proposals.len()) else {
                return Err(bad(Malformed::ProposalCount));
            };
            let answer = Proposal::from_wire(w);
            let sel =
                proposal::check_answer(&req.proposals, w.number, &answer, SelectOptions::default())
                    .map_err(Failure::BadAnswer)?;
            let peer_spi = w
                .ike_spi()
                .filter(|s| s.0 != 0)
                .ok_or(bad(Malformed::SpiSize(8)))?;
            if sel.ke.map(|g| g.0) != Some(req.kex.group()) || ke.group.0 != req.kex.group() {
                return Err(bad(Malformed::KeGroup));
            }
            let g_ir = req
                .kex
                .complete(ke.data)
                .map_err(|why| peer_kex(req.kex.group(), why))?;
            Ok((sel, peer_spi, nr.to_vec(), g_ir))
        })();
        let (sel, peer_spi, nr, g_ir) = match result {
            Ok(x) => x,
            Err(f) => {
                self.failed_in(
                    ExchangeType::CREATE_CHILD_SA,
                    Some(sa),
                    cfg.name.clone(),
                    true,
                    f,
                );
                self.yield_to_crossed_rekey(sa, &req);
                return;
            }
        };
        if sel.additional().next().is_some() {
            let ours = min_nonce(&req.ni, &nr);
            let col = req.collision.take();
            if let Some(col) = &col {
                #[cfg(test)]
                self.collision_log.push(CollisionLog {
                    ike: true,
                    ours: (req.ni.clone(), nr.clone()),
                    theirs: col.nonces.clone(),
                    won: ours >= col.nonce,
                    survivor: if ours >= col.nonce {
                        req.spi.0
                    } else {
                        col.created
                    },
                });
                if ours < col.nonce {
                    // §2.8.2 with RFC 9370: we lost, so we send no IKE_FOLLOWUP_KE; the
                    // peer's exchange goes on (or is done) and its SA takes over.
                    if col.created != 0 {
                        self.actions.push(Action::MoveTo {
                            old: sa.our_spi(),
                            new: IkeSpi(col.created),
                            then_delete_old: false,
                        });
                    }
                    return;
                }
                // We won: the peer sends no IKE_FOLLOWUP_KE for its exchange.
                if sa
                    .followup
                    .as_ref()
                    .is_some_and(|f| f.made_in == col.made_in)
                {
                    sa.followup = None;
                }
            }
            // Decided (and logged); a peer's SA made meanwhile stays for the clean-up.
            req.collision = col.filter(|c| c.created != 0);
            sa.life = Life::Rekeying;
            let made = Made::IkeRekey {
                req,
                sel,
                peer_spi,
                nr,
            };
            if let Err(e) = self.start_followups(now, sa, made, g_ir, inner) {
                let (made, f) = *e;
                self.followup_over(now, sa, made, None);
                self.failed_in(
                    ExchangeType::CREATE_CHILD_SA,
                    Some(sa),
                    cfg.name.clone(),
                    true,
                    f,
                );
            }
            return;
        }
        self.finish_ike_rekey(now, sa, req, sel, peer_spi, nr, &g_ir);
    }

    /// Initiator: our IKE SA rekey is answered (and its additional key exchanges done):
    /// SKEYSEED = prf(SK_d (old), g^ir (new) [| SK(1) | ... | SK(n)] | Ni | Nr), where
    /// `secret` is g^ir and the additional shared secrets in order (RFC 9370 §2.2.4), and
    /// the new SA takes over, or loses a collision (§2.8.2).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        req: IkeRekeyRequest,
        sel: Selected,
        peer_spi: IkeSpi,
        nr: Vec<u8>,
        secret: &Secret,
    ) {
        sa.life = Life::Normal;
        let cfg = self.peers[&sa.peer].clone();
        #[cfg(test)]
        self.kdf_inputs.push(("ike", secret.expose().len()));
        let derived = match sa.keys.as_ref() {
            None => Err(Failure::Local(LocalError::NoKeys)),
            Some(old) => IkeKeys::derive_rekey(
                &self.provider,
                &sel,
                old,
                secret,
                &req.ni,
                &nr,
                req.spi,
                peer_spi,
                true,
            )
            .map_err(|why| derivation("IKE SA", why)),
        };
        let keys = match derived {
            Ok(k) => k,
            Err(f) => {
                self.failed_in(
                    ExchangeType::CREATE_CHILD_SA,
                    Some(sa),
                    cfg.name.clone(),
                    true,
                    f,
                );
                self.yield_to_crossed_rekey(sa, &req);
                return;
            }
        };
        let ours = min_nonce(&req.ni, &nr);
        let nonce = Some(&nr[..]);
        #[cfg(test)]
        if let (Some(c), Some(nr)) = (&req.collision, nonce) {
            self.collision_log.push(CollisionLog {
                ike: true,
                ours: (req.ni.clone(), nr.to_vec()),
                theirs: c.nonces.clone(),
                won: ours >= c.nonce,
                survivor: if ours >= c.nonce {
                    req.spi.0
                } else {
                    c.created
                },
            });
        }
        let _ = nonce;
        let mut new = self.rekeyed_sa(now, sa, true, req.spi, peer_spi, keys, sel, ours.clone());
        match req.collision.as_ref().filter(|c| c.created != 0) {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.8.2
            //# the SA created with the lowest of the four nonces used in the two exchanges
            //# SHOULD be closed by the endpoint that created it.
            Some(col) if ours < col.nonce => {
                // We lost: our new IKE SA is redundant and ours to delete; the peer's new SA
                // takes over, and the peer deletes the old one.
                new.push_work(Work::DeleteIke);
                self.actions.push(Action::Insert(req.spi, Box::new(new)));
                self.actions.push(Action::MoveTo {
                    old: sa.our_spi(),
                    new: IkeSpi(col.created),
                    then_delete_old: false,
                });
                self.actions.push(Action::Pump(req.spi));
            }
            col => {
                if let Some(col) = col {
                    // The peer's redundant SA is the peer's to delete; if it does not, we
                    // do later.
                    let at = now + 2 * self.config.retransmit.total();
                    self.actions
                        .push(Action::CleanupAt(IkeSpi(col.created), at));
                }
                self.actions.push(Action::Insert(req.spi, Box::new(new)));
                self.actions.push(Action::MoveTo {
                    old: sa.our_spi(),
                    new: req.spi,
                    then_delete_old: true,
                });
            }
        }
    }
}
