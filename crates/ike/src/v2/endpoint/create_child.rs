//! CREATE_CHILD_SA for Child SAs (RFC 7296 §1.3.1, §2.8): new Child SAs, rekeys with optional PFS, collisions, the make-before-break switch.

use super::*;

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_create_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        policy: PolicyId,
        rekey: Option<Spi>,
        group: Option<DhGroup>,
        tries: u8,
    ) -> Result<(), CommandError> {
        if let Some(old) = rekey {
            match sa.child(old) {
                Some(c) if c.state == ChildState::Installed => {}
                // Deleted, replaced or being rekeyed meanwhile: nothing to do.
                _ => return Err(CommandError::NoSuchSa),
            }
        }
        if sa.life != Life::Normal {
            return Err(CommandError::Busy);
        }
        let cfg = &self.peers[&sa.peer];
        let pol = cfg
            .policy(policy)
            .ok_or_else(|| CommandError::Config("no such policy".into()))?;
        // The policy's own proposals (its tunnel's IPSec crypto profile), for a new Child SA
        // and for the rekey of one alike.
        let proposals = pol.proposals.clone();
        // With addresses from a configuration payload, narrowed to them (R-V2-12).
        let (tsi, tsr) = Core::policy_ts(sa, &pol.ts).initiator_offer();
        if (tsi.is_empty() && !pol.ts.local.is_empty())
            || (tsr.is_empty() && !pol.ts.remote.is_empty())
        {
            let why = Failure::NoVirtualAddress {
                policy: pol.name().to_owned(),
                local: pol.ts.local.clone(),
                assigned: sa
                    .cp
                    .as_ref()
                    .map(|c| c.addresses_text())
                    .unwrap_or_default(),
            };
            let name = cfg.name.clone();
            self.failed_in(ExchangeType::CREATE_CHILD_SA, Some(sa), name, true, why);
            return Err(CommandError::Config(
                "no virtual address for the policy".into(),
            ));
        }
        // PFS when the Child SA proposals name a group (or the peer asked for one).
        let pfs = group.or_else(|| first_group(&proposals));
        let kex = match pfs {
            Some(g) => Some(
                self.provider
                    .key_exchange(g.0)
                    .and_then(|k| k.start(&mut *self.rng))
                    .map_err(|e| CommandError::Config(e.to_string()))?,
            ),
            None => None,
        };
        let spi = self.new_child_spi();
        let ni = self.random_bytes(NONCE_LEN);
        let proposals = with_spi(&proposals, spi);
        let old_spi = rekey.map(|s| s.0.to_be_bytes());
        let proto = proposals.first().map_or(ProtocolId::ESP, |p| p.protocol);
        let mut inner = Vec::new();
        if let Some(old) = &old_spi {
            inner.push(Payload::new(PayloadBody::Notify(Notify {
                protocol: proto,
                spi: old,
                ty: NotifyType::REKEY_SA,
                data: &[],
            })));
        }
        inner.push(Payload::new(PayloadBody::Sa(proposals_to_wire(&proposals))));
        inner.push(Payload::new(PayloadBody::Nonce(&ni)));
        if let Some(k) = &kex {
            inner.push(Payload::new(PayloadBody::Ke(KeyExchange {
                group: DhGroup(k.group()),
                data: k.public_key(),
            })));
        }
        inner.push(Payload::new(PayloadBody::TsI(tsi.to_wire())));
        inner.push(Payload::new(PayloadBody::TsR(tsr.to_wire())));
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::CREATE_CHILD_SA, id, false);
        if sa.keys.is_none() {
            return Err(CommandError::Busy);
        }
        let msgs = sa
            .protect(&mut *self.rng, &self.config, header, &inner)
            .map_err(|e| CommandError::Config(e.to_string()))?;
        drop(inner);
        for m in &msgs {
            self.send(sa.local, sa.remote, m);
        }
        sa.requests.start(now, msgs, self.config.retransmit);
        if let Some(old) = rekey
            && let Some(c) = sa.child_mut(old)
        {
            c.state = ChildState::Rekeying;
        }
        sa.pending = Some(Pending::Child(Box::new(ChildRequest {
            policy,
            rekey,
            spi,
            ni,
            kex,
            offer: Narrowed { tsi, tsr },
            proposals,
            tries,
            collision: None,
            deleted_early: Vec::new(),
        })));
        Ok(())
    }

    pub(super) fn child_error(&mut self, sa: &mut IkeSa, header: &Header, r: Rejection) {
        let (ty, data) = r.notify();
        self.respond(
            sa,
            header,
            &[Payload::new(PayloadBody::Notify(Notify::new(ty, &data)))],
        );
    }

    /// A random delay before retrying after TEMPORARY_FAILURE, so that two peers that
    /// collided do not collide again.
    pub(super) fn retry_at(&mut self, now: Instant) -> Instant {
        let mut b = [0u8; 4];
        self.rng.fill(&mut b);
        let ms = u64::from(u32::from_be_bytes(b)) % (RETRY_DELAY.as_millis() as u64 + 1);
        now + RETRY_DELAY + std::time::Duration::from_millis(ms)
    }

    pub(super) fn defer(&mut self, now: Instant, sa: &mut IkeSa, w: Work) {
        let at = self.retry_at(now);
        if sa.deferred.len() < MAX_QUEUED_WORK {
            sa.deferred.push((at, w));
        }
    }

    /// Responder: CREATE_CHILD_SA request on an established SA.
    pub(super) fn handle_create_child_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        let cfg = self.peers[&sa.peer].clone();
        let Found {
            sa: child_sa,
            nonce,
            ke,
            tsi,
            tsr,
            rekey_sa: rekey,
            ..
        } = Found::of(inner);
        let (Some(csa), Some(ni)) = (child_sa, nonce) else {
            self.child_error(sa, header, Rejection::Malformed);
            return Keep::Yes;
        };
        if !(16..=256).contains(&ni.len()) {
            self.child_error(sa, header, Rejection::Malformed);
            return Keep::Yes;
        }
        let offered = offered_proposals(csa);
        if offered.iter().any(|(_, p)| p.protocol == ProtocolId::IKE) {
            return self.handle_ike_rekey_request(now, sa, header, &offered, ni, ke);
        }
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.2
        //# If a peer receives a request to rekey a Child SA when it is currently
        //# rekeying the IKE SA, it SHOULD reply with TEMPORARY_FAILURE.
        // The same while the IKE SA is replaced or being deleted: the new Child SA would
        // belong to an IKE SA on its way out.
        if sa.life != Life::Normal || sa.deleting() {
            self.child_error(sa, header, Rejection::Busy);
            return Keep::Yes;
        }
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            self.child_error(sa, header, Rejection::Malformed);
            return Keep::Yes;
        };
        // A rekey names the peer's inbound SPI of the old pair, i.e. our outbound.
        let rekeyed = match rekey {
            Some(n) => match n.child_spi() {
                Some(spi) => match sa.children.iter().find(|c| c.outbound == spi) {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.1
                    //# If a peer receives a request to rekey a Child SA that does not exist,
                    //# it SHOULD reply with CHILD_SA_NOT_FOUND.
                    // Unless our own CREATE_CHILD_SA is in flight: the SA may be the one
                    // it makes (the peer answered, we have not seen the answer yet).
                    None if matches!(sa.pending, Some(Pending::Child(_))) => {
                        self.child_error(sa, header, Rejection::Busy);
                        return Keep::Yes;
                    }
                    None => {
                        self.child_error(sa, header, Rejection::ChildNotFound);
                        return Keep::Yes;
                    }
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.1
                    //# If a peer receives a request to rekey a Child SA that it is currently
                    //# trying to close, it SHOULD reply with TEMPORARY_FAILURE.
                    Some(c) if matches!(c.state, ChildState::Rekeyed | ChildState::Deleting) => {
                        self.child_error(sa, header, Rejection::Busy);
                        return Keep::Yes;
                    }
                    // RFC 9370 §2.2.4: our IKE_FOLLOWUP_KE exchanges for the rekey of the
                    // same pair have started.
                    Some(c)
                        if matches!(&sa.pending, Some(Pending::Followup(f))
                            if f.rekeys() == Some(c.inbound)) =>
                    {
                        self.child_error(sa, header, Rejection::Busy);
                        return Keep::Yes;
                    }
                    Some(c) => Some(c.inbound),
                },
                None => {
                    self.child_error(sa, header, Rejection::Malformed);
                    return Keep::Yes;
                }
            },
            None => None,
        };
        if rekeyed.is_none() && sa.children.len() >= MAX_CHILD_SAS {
            self.child_error(sa, header, Rejection::NoAdditionalSas);
            return Keep::Yes;
        }
        // The TS pick the policy (a rekey keeps the replaced pair's), then that policy's
        // own proposals are selected from.
        let only = rekeyed.and_then(|old| sa.child(old)).map(|c| c.policy);
        let ChildChoice {
            policy: idx,
            narrowed,
            sel,
        } = match select_child(sa, &cfg, &offered, &tsi, &tsr, only, false) {
            Ok(c) => c,
            Err(f) => {
                self.child_error(sa, header, Rejection::of(&f));
                self.failed_in(
                    ExchangeType::CREATE_CHILD_SA,
                    Some(sa),
                    cfg.name.clone(),
                    true,
                    f,
                );
                return Keep::Yes;
            }
        };
        // PFS: the KE payload must be of the chosen group (§1.3.1, INVALID_KE_PAYLOAD).
        let mut our_ke = None;
        if let Some(g) = sel.ke {
            let resp = match ke {
                Some(k) if k.group == g => self
                    .provider
                    .key_exchange(g.0)
                    .and_then(|alg| alg.respond(&mut *self.rng, k.data)),
                _ => {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-1.3
                    //# the responder MUST reject the request and indicate its preferred
                    //# Diffie-Hellman group in the INVALID_KE_PAYLOAD Notify payload.
                    self.child_error(sa, header, Rejection::WrongGroup(g));
                    return Keep::Yes;
                }
            };
            match resp {
                Ok(r) => our_ke = Some((g, r)),
                Err(_) => {
                    self.child_error(sa, header, Rejection::Malformed);
                    return Keep::Yes;
                }
            }
        }
        let Some(outbound) = sel
            .spi
            .as_slice()
            .try_into()
            .ok()
            .map(|b: [u8; 4]| Spi(u32::from_be_bytes(b)))
        else {
            self.child_error(sa, header, Rejection::Malformed);
            return Keep::Yes;
        };
        let inbound = self.new_child_spi();
        let nr = self.random_bytes(NONCE_LEN);
        if sel.additional().next().is_some() {
            return self.answer_with_followups(
                now, sa, header, &cfg, idx, sel, our_ke, narrowed, inbound, outbound, rekeyed, ni,
                nr,
            );
        }
        let kes = sel.ke.into_iter().collect();
        #[cfg(test)]
        self.kdf_inputs.push((
            "child",
            our_ke.as_ref().map_or(0, |(_, r)| r.shared.expose().len()),
        ));
        let info = match self.child_info(
            sa,
            cfg.policy(idx).map_or("", |p| p.name()),
            &sel,
            inbound,
            outbound,
            ni,
            &nr,
            our_ke.as_ref().map(|(_, r)| &r.shared),
            narrowed.tsi.clone(),
            narrowed.tsr.clone(),
            false, // CREATE_CHILD_SA: we answer
            kes,
        ) {
            Ok(i) => i,
            Err(f) => {
                self.child_error(sa, header, Rejection::NoProposal);
                self.failed_in(
                    ExchangeType::CREATE_CHILD_SA,
                    Some(sa),
                    cfg.name.clone(),
                    true,
                    f,
                );
                return Keep::Yes;
            }
        };
        let answer = sel.to_proposal(inbound.0.to_be_bytes().to_vec());
        let mut out = vec![
            Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![answer.to_wire(sel.number)],
            })),
            Payload::new(PayloadBody::Nonce(&nr)),
        ];
        if let Some((g, r)) = &our_ke {
            out.push(Payload::new(PayloadBody::Ke(KeyExchange {
                group: *g,
                data: &r.public,
            })));
        }
        out.push(Payload::new(PayloadBody::TsI(narrowed.tsi.to_wire())));
        out.push(Payload::new(PayloadBody::TsR(narrowed.tsr.to_wire())));
        self.respond(sa, header, &out);
        self.child_made_as_responder(now, sa, header, info, idx, rekeyed, ni, &nr);
        Keep::Yes
    }

    /// Responder: a CREATE_CHILD_SA whose proposal has additional key exchanges (RFC 9370
    /// §2.2.4) is answered with the link for the first IKE_FOLLOWUP_KE; the pair is made when
    /// the last one is done.
    #[allow(clippy::too_many_arguments)]
    fn answer_with_followups(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        cfg: &PeerConfig,
        policy: PolicyId,
        sel: Selected,
        our_ke: Option<(DhGroup, ferrosec_crypto::KeyExchangeResponse)>,
        narrowed: Narrowed,
        inbound: Spi,
        outbound: Spi,
        rekeyed: Option<Spi>,
        ni: &[u8],
        nr: Vec<u8>,
    ) -> Keep {
        // Additional key exchanges follow a first one (PFS), as strongSwan requires too.
        let Some((g, kx)) = our_ke else {
            self.child_error(sa, header, Rejection::NoProposal);
            let f = Failure::Followup(FollowupFailure::NoLink {
                after: "CREATE_CHILD_SA (the proposal has additional key exchanges but no PFS group)",
                methods: sel.additional().collect(),
            });
            self.failed_in(
                ExchangeType::CREATE_CHILD_SA,
                Some(sa),
                cfg.name.clone(),
                true,
                f,
            );
            return Keep::Yes;
        };
        let answer = sel.to_proposal(inbound.0.to_be_bytes().to_vec());
        let number = sel.number;
        let (tsi, tsr) = (narrowed.tsi.to_wire(), narrowed.tsr.to_wire());
        let makes = Makes::Child {
            policy,
            sel,
            inbound,
            outbound,
            narrowed,
            rekeyed,
        };
        let link = self.expect_followups(now, sa, makes, header.message_id, ni, &nr, kx.shared);
        let out = [
            Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![answer.to_wire(number)],
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
            Payload::new(PayloadBody::TsI(tsi)),
            Payload::new(PayloadBody::TsR(tsr)),
        ];
        self.respond(sa, header, &out);
        if let Some(old) = rekeyed
            && let Some(Pending::Child(r)) = &mut sa.pending
            && r.rekey == Some(old)
        {
            // Crossing our own rekey of the pair: decided when our answer comes.
            r.collision = Some(Collision {
                nonce: min_nonce(ni, &nr),
                #[cfg(test)]
                nonces: (ni.to_vec(), nr.clone()),
                created: 0,
                made_in: header.message_id,
            });
        }
        Keep::Yes
    }

    /// Responder: the pair the peer's CREATE_CHILD_SA (and its IKE_FOLLOWUP_KE exchanges)
    /// made is answered: it goes up, and for a rekey it replaces the old pair, or waits for
    /// the outcome of a collision with our own rekey of it (§2.8.1).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_made_as_responder(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        info: ChildSaInfo,
        idx: PolicyId,
        rekeyed: Option<Spi>,
        ni: &[u8],
        nr: &[u8],
    ) {
        let inbound = info.inbound_spi;
        self.add_child(now, sa, info, idx);
        if let Some(old) = rekeyed {
            match &mut sa.pending {
                Some(Pending::Child(r)) if r.rekey == Some(old) => {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25.1
                    //# If a peer receives a request to rekey a Child SA that it is currently
                    //# rekeying, it SHOULD reply as usual, and SHOULD prepare to close
                    //# redundant SAs later based on the nonces (see Section 2.8.1).
                    r.collision = Some(Collision {
                        nonce: min_nonce(ni, nr),
                        #[cfg(test)]
                        nonces: (ni.to_vec(), nr.to_vec()),
                        created: u64::from(inbound.0),
                        made_in: header.message_id,
                    });
                }
                _ => {
                    // The old pair stays until the initiator deletes it (§2.8); outbound
                    // traffic moves once the initiator has installed the new pair.
                    if let Some(c) = sa.child_mut(old) {
                        c.state = ChildState::Rekeyed;
                        c.soft = None;
                    }
                    self.switch_outbound(now, sa, old, inbound, Some(header.message_id));
                }
            }
        }
    }

    /// Outbound traffic of `old` is to move to `new`, a pair the peer made in its request
    /// `made_in` on this IKE SA: now if a later request of the peer already came (it
    /// processed our answer), else when one comes (see [`Switch`]).
    pub(super) fn switch_outbound(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        old: Spi,
        new: Spi,
        made_in: Option<MessageId>,
    ) {
        let answered = made_in.is_some_and(|m| sa.responses.expected().0 > m.0.wrapping_add(1));
        if answered || made_in.is_none() {
            self.child_rekeyed(sa, old, new);
            return;
        }
        let by = now + self.config.retransmit.total();
        if let Some(c) = sa.child_mut(old) {
            c.switch = Some(Switch {
                to: new,
                made_in,
                by,
            });
        }
    }

    /// Makes the pending switch of `old` (if any) now.
    pub(super) fn flush_switch(&mut self, sa: &mut IkeSa, old: Spi) {
        if let Some(s) = sa.child_mut(old).and_then(|c| c.switch.take()) {
            self.child_rekeyed(sa, old, s.to);
        }
    }

    /// Makes the pending switches that a new request `id` of the peer, or time `now`,
    /// releases.
    pub(super) fn flush_switches(
        &mut self,
        sa: &mut IkeSa,
        id: Option<MessageId>,
        now: Option<Instant>,
    ) {
        let due: Vec<Spi> = sa
            .children
            .iter()
            .filter(|c| {
                c.switch.is_some_and(|s| {
                    id.is_some_and(|id| s.made_in.is_some_and(|m| id.0 > m.0))
                        || now.is_some_and(|t| t >= s.by)
                })
            })
            .map(|c| c.inbound)
            .collect();
        for old in due {
            self.flush_switch(sa, old);
        }
    }

    /// Reports the switch of outbound traffic from `old` to `new`, unless one of them is gone
    /// (the switch was then reported before `old` went).
    pub(super) fn child_rekeyed(&mut self, sa: &IkeSa, old: Spi, new: Spi) {
        if sa.child(old).is_some()
            && let Some(n) = sa.child(new)
        {
            let e = Event::ChildSaRekeyed {
                ike_sa: IkeSaHandle(sa.our_spi()),
                old_inbound_spi: old,
                new_inbound_spi: new,
                new_outbound_spi: n.outbound,
            };
            self.event(e);
        }
    }

    /// Our rekey of `old` is over without a new pair of ours: back to `Installed`.
    pub(super) fn rekey_failed(sa: &mut IkeSa, old: Option<Spi>) {
        if let Some(old) = old
            && let Some(c) = sa.child_mut(old)
            && c.state == ChildState::Rekeying
        {
            c.state = ChildState::Installed;
        }
    }

    /// Initiator: CREATE_CHILD_SA response.
    pub(super) fn handle_create_child_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        mut req: ChildRequest,
        inner: &[Payload<'_>],
    ) {
        let cfg = self.peers[&sa.peer].clone();
        if let Some(n) = first_error_notify(inner) {
            if let (Some(old), Some(col)) =
                (req.rekey, req.collision.as_ref().filter(|c| c.created != 0))
            {
                // §2.8.1: the peer's rekey of the same SA crossed ours and succeeded: its
                // new pair replaces the old one, whose delete the peer sends.
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                self.switch_outbound(now, sa, old, Spi(col.created as u32), Some(col.made_in));
                return;
            }
            Self::rekey_failed(sa, req.rekey);
            let group = req.kex.as_ref().map(|k| DhGroup(k.group()));
            match n {
                NotifyType::INVALID_KE_PAYLOAD => {
                    let wanted = find_notify(inner, NotifyType::INVALID_KE_PAYLOAD)
                        .and_then(|n| n.data.get(..2))
                        .map(|b| DhGroup(u16::from_be_bytes([b[0], b[1]])));
                    let ours = req.proposals.iter().any(|p| {
                        p.of_type(TransformType::KE)
                            .any(|t| Some(DhGroup(t.id)) == wanted)
                    });
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-1.3
                    //# the initiator ... retry the CREATE_CHILD_SA request with the group
                    //# the responder asked for
                    if let Some(g) = wanted
                        && ours
                        && Some(g) != group
                        && req.tries < MAX_TRIES
                    {
                        sa.push_work_front(Work::CreateChild {
                            policy: req.policy,
                            rekey: req.rekey,
                            group: Some(g),
                            tries: req.tries + 1,
                        });
                        return;
                    }
                }
                NotifyType::TEMPORARY_FAILURE if req.tries < MAX_TRIES => {
                    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.25
                    //# it SHOULD retry the request after a short delay
                    let w = Work::CreateChild {
                        policy: req.policy,
                        rekey: req.rekey,
                        group,
                        tries: req.tries + 1,
                    };
                    self.defer(now, sa, w);
                    return;
                }
                NotifyType::CHILD_SA_NOT_FOUND => {
                    // The peer has no such SA (deleted meanwhile): neither do we.
                    if let Some(old) = req.rekey
                        && let Some(pos) = sa.children.iter().position(|c| c.inbound == old)
                    {
                        let c = sa.remove_child(pos);
                        self.event(Event::ChildSaDown {
                            ike_sa: IkeSaHandle(sa.our_spi()),
                            inbound_spi: c.inbound,
                            outbound_spi: c.outbound,
                            reason: DownReason::PeerDelete,
                        });
                        return;
                    }
                }
                _ => {}
            }
            let why = match cfg.policy(req.policy) {
                Some(p) => Failure::ChildRefused {
                    policy: p.ts.name.clone(),
                    notify: n,
                    offered: proposal::describe(&req.proposals),
                    tsi: req.offer.tsi.clone(),
                    tsr: req.offer.tsr.clone(),
                },
                None => Failure::PeerRefused { notify: n },
            };
            self.failed_in(
                ExchangeType::CREATE_CHILD_SA,
                Some(sa),
                cfg.name.clone(),
                true,
                why,
            );
            return;
        }
        let Found {
            sa: child_sa,
            nonce,
            ke,
            tsi,
            tsr,
            ..
        } = Found::of(inner);
        let proto = child_sa
            .and_then(|c| c.proposals.first())
            .map_or(ProtocolId::ESP, |p| p.protocol);
        let result = self
            .check_child_answer(&req, child_sa, nonce, ke, tsi, tsr)
            .and_then(|(answer, g_ir)| {
                if answer.sel.additional().next().is_some() {
                    return Ok((answer, g_ir, None));
                }
                let info = self.child_info_of(sa, &cfg, &req, &answer, g_ir.as_ref())?;
                Ok((answer, g_ir, Some(info)))
            });
        let (answer, g_ir, info) = match result {
            Ok(x) => x,
            Err(f) => {
                self.child_answer_failed(now, sa, &cfg, &req, child_sa.map(|_| proto), f);
                return;
            }
        };
        let Some(info) = info else {
            // RFC 9370 §2.2.4: additional key exchanges follow, unless a crossing rekey of
            // the same pair won (§2.8.1), which then goes on alone.
            let ours = min_nonce(&req.ni, &answer.nr);
            let col = req.collision.take();
            if let (Some(old), Some(col)) = (req.rekey, &col) {
                #[cfg(test)]
                self.collision_log.push(CollisionLog {
                    ike: false,
                    ours: (req.ni.clone(), answer.nr.clone()),
                    theirs: col.nonces.clone(),
                    won: ours >= col.nonce,
                    survivor: if ours >= col.nonce {
                        u64::from(req.spi.0)
                    } else {
                        col.created
                    },
                });
                if ours < col.nonce {
                    if col.created != 0 {
                        if let Some(c) = sa.child_mut(old) {
                            c.state = ChildState::Rekeyed;
                            c.soft = None;
                        }
                        self.switch_outbound(
                            now,
                            sa,
                            old,
                            Spi(col.created as u32),
                            Some(col.made_in),
                        );
                    } else {
                        Self::rekey_failed(sa, req.rekey);
                    }
                    return;
                }
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
            let Some(g_ir) = g_ir else {
                let f = Failure::Followup(FollowupFailure::NoLink {
                    after: "CREATE_CHILD_SA (additional key exchanges without a PFS group)",
                    methods: answer.sel.additional().collect(),
                });
                self.child_answer_failed(now, sa, &cfg, &req, Some(proto), f);
                return;
            };
            let made = Made::Child { req, answer };
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
        };
        self.finish_child(now, sa, req, info, answer.nr);
    }

    /// Initiator: a CREATE_CHILD_SA answer we cannot use: the pair the peer may have made
    /// is deleted there (`made`: its protocol), and a rekey of ours is over.
    fn child_answer_failed(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        cfg: &PeerConfig,
        req: &ChildRequest,
        made: Option<ProtocolId>,
        f: Failure,
    ) {
        if let Some(proto) = made {
            // The peer installed what it answered: have it deleted there.
            sa.push_work_front(Work::DeleteRejected(proto, req.spi));
        }
        match (req.rekey, req.collision.as_ref().filter(|c| c.created != 0)) {
            (Some(old), Some(col)) => {
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                self.switch_outbound(now, sa, old, Spi(col.created as u32), Some(col.made_in));
            }
            _ => Self::rekey_failed(sa, req.rekey),
        }
        self.failed_in(
            ExchangeType::CREATE_CHILD_SA,
            Some(sa),
            cfg.name.clone(),
            true,
            f,
        );
    }

    /// Initiator: our new pair (its keys derived, additional key exchanges done) goes up;
    /// for a rekey it replaces the old pair, or loses a collision (§2.8.1).
    pub(super) fn finish_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        req: ChildRequest,
        info: ChildSaInfo,
        nr: Vec<u8>,
    ) {
        let new = info.inbound_spi;
        if !req.deleted_early.contains(&info.outbound_spi) {
            self.add_child(now, sa, info, req.policy);
        }
        let Some(old) = req.rekey else {
            return;
        };
        let ours = min_nonce(&req.ni, &nr);
        #[cfg(test)]
        if let Some(c) = &req.collision {
            self.collision_log.push(CollisionLog {
                ike: false,
                ours: (req.ni.clone(), nr.clone()),
                theirs: c.nonces.clone(),
                won: ours >= c.nonce,
                survivor: if ours >= c.nonce {
                    u64::from(new.0)
                } else {
                    c.created
                },
            });
        }
        match req.collision.as_ref().filter(|c| c.created != 0) {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.8.1
            //# If redundant SAs are created through such a collision, the SA created with
            //# the lowest of the four nonces used in the two exchanges SHOULD be closed by
            //# the endpoint that created it.
            Some(col) if ours < col.nonce => {
                // We lost: our new pair is redundant and ours to delete; the peer deletes
                // the old one.
                if let Some(c) = sa.child_mut(new) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                sa.push_work_front(Work::DeleteChild(new));
                // The survivor is the peer's: it installs it when it processes our answer.
                self.switch_outbound(now, sa, old, Spi(col.created as u32), Some(col.made_in));
            }
            col => {
                // We won (or there was no collision): the old pair goes (make-before-break:
                // the new one is installed). A redundant pair of the peer's is the peer's
                // to delete.
                if let Some(col) = col
                    && let Some(c) = sa.child_mut(Spi(col.created as u32))
                {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                }
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                    c.soft = None;
                    sa.push_work_front(Work::DeleteChild(old));
                }
                // The peer installed the new pair before it answered: switch now.
                match col {
                    Some(col) if sa.child(old).is_none() => {
                        // The peer deleted the old pair meanwhile and traffic moved to the
                        // pair the peer made: from there, then.
                        self.child_rekeyed(sa, Spi(col.created as u32), new);
                    }
                    _ => self.child_rekeyed(sa, old, new),
                }
            }
        }
    }

    /// Checks a CREATE_CHILD_SA answer; its selection, SPI, selectors and Nr, and g^ir when
    /// it carried a key exchange.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_child_answer(
        &mut self,
        req: &ChildRequest,
        child_sa: Option<&Sa<'_>>,
        nonce: Option<&[u8]>,
        ke: Option<KeyExchange<'_>>,
        tsi: Option<TsSet>,
        tsr: Option<TsSet>,
    ) -> Result<(ChildAnswer, Option<Secret>), Failure> {
        let bad = |what| Failure::PeerMisbehaved {
            exchange: ExchangeType::CREATE_CHILD_SA.into(),
            response: true,
            what,
        };
        let (Some(csa), Some(nr), Some(tsi), Some(tsr)) = (child_sa, nonce, tsi, tsr) else {
            return Err(bad(Malformed::Missing("SA, Nr, TSi or TSr")));
        };
        if !(16..=256).contains(&nr.len()) {
            return Err(bad(Malformed::NonceLength));
        }
        let (Some(wire_answer), 1) = (csa.proposals.first(), csa.proposals.len()) else {
            return Err(bad(Malformed::ProposalCount));
        };
        let answer = Proposal::from_wire(wire_answer);
        let sel = proposal::check_answer(
            &req.proposals,
            wire_answer.number,
            &answer,
            SelectOptions::default(),
        )
        .map_err(Failure::BadAnswer)?;
        let g_ir = match (sel.ke, &req.kex, ke) {
            (None, _, _) => None,
            (Some(g), Some(kx), Some(k)) if k.group == g && kx.group() == g.0 => {
                Some(kx.complete(k.data).map_err(|why| peer_kex(g.0, why))?)
            }
            _ => return Err(bad(Malformed::KeGroup)),
        };
        let got = Narrowed { tsi, tsr };
        if !ts::check_response(&req.offer, &got) {
            return Err(Failure::BadTsAnswer {
                tsi: got.tsi,
                tsr: got.tsr,
                offered_tsi: req.offer.tsi.clone(),
                offered_tsr: req.offer.tsr.clone(),
            });
        }
        let Some(outbound) = wire_answer.child_spi() else {
            return Err(bad(Malformed::SpiSize(4)));
        };
        let answer = ChildAnswer {
            sel,
            outbound,
            got,
            nr: nr.to_vec(),
        };
        Ok((answer, g_ir))
    }

    /// The new pair of our CREATE_CHILD_SA, its KEYMAT from `secret` (g^ir and the
    /// additional shared secrets in order, RFC 9370 §2.2.4; `None` without PFS).
    pub(super) fn child_info_of(
        &mut self,
        sa: &IkeSa,
        cfg: &PeerConfig,
        req: &ChildRequest,
        answer: &ChildAnswer,
        secret: Option<&Secret>,
    ) -> Result<ChildSaInfo, Failure> {
        let name = cfg
            .policy(req.policy)
            .map(|p| p.name().to_owned())
            .unwrap_or_default();
        let kes = answer
            .sel
            .ke
            .into_iter()
            .chain(answer.sel.additional())
            .collect();
        #[cfg(test)]
        self.kdf_inputs
            .push(("child", secret.map_or(0, |s| s.expose().len())));
        self.child_info(
            sa,
            &name,
            &answer.sel,
            req.spi,
            answer.outbound,
            &req.ni,
            &answer.nr,
            secret,
            answer.got.tsi.clone(),
            answer.got.tsr.clone(),
            true, // CREATE_CHILD_SA: we asked
            kes,
        )
    }

    // -----------------------------------------------------------------------------------
    // IKE SA rekey (§1.3.2, §2.18)
}
