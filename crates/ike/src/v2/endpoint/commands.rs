//! Commands from the daemon (initiate, delete, rekey, re-authenticate, liveness) and the per-SA work queue that runs them one request at a time.

use super::*;

impl Core {
    /// Starts queued work while the SA is established and idle.
    pub(super) fn pump(&mut self, now: Instant, sa: &mut IkeSa) {
        while sa.established() && !sa.requests.busy() {
            let Some(work) = sa.queue.pop_front() else {
                break;
            };
            if matches!(sa.life, Life::Rekeyed(_)) && work != Work::DeleteIke {
                // Replaced: only its delete is still to be done here.
                continue;
            }
            let _ = match work {
                Work::CreateChild {
                    policy,
                    rekey,
                    group,
                    tries,
                } => self.start_create_child(now, sa, policy, rekey, group, tries),
                Work::RekeyIke { group, tries } => self.start_ike_rekey(now, sa, group, tries),
                w => self.start_informational(now, sa, w),
            };
        }
        // Re-authentication: the old IKE SA goes once every Child SA of the new one is up.
        if let Some(old) = sa.replaces
            && sa.established()
            && sa.announced
            && !sa.requests.busy()
            && !matches!(sa.pending, Some(Pending::Child(_)))
            && !matches!(&sa.pending, Some(Pending::Followup(f)) if !f.ike())
            && !sa
                .queue
                .iter()
                .any(|w| matches!(w, Work::CreateChild { .. }))
        {
            sa.replaces = None;
            self.actions.push(Action::DeleteIke(old));
        }
    }

    pub(super) fn start_informational(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        what: Work,
    ) -> Result<(), CommandError> {
        if !sa.established() || sa.requests.busy() {
            return Err(CommandError::Busy);
        }
        let spis;
        let mut inner = Vec::new();
        match what {
            Work::Liveness | Work::CreateChild { .. } | Work::RekeyIke { .. } => {}
            Work::DeleteIke => inner.push(Payload::new(PayloadBody::Delete(Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: &[],
            }))),
            Work::DeleteChild(inbound) => {
                let Some(c) = sa.child_mut(inbound) else {
                    return Err(CommandError::NoSuchSa);
                };
                c.state = ChildState::Deleting;
                c.soft = None;
                let proto = c.protocol;
                spis = inbound.0.to_be_bytes();
                inner.push(Payload::new(PayloadBody::Delete(Delete {
                    protocol: proto,
                    spi_size: 4,
                    spis: &spis,
                })));
            }
            Work::DeleteRejected(proto, spi) => {
                spis = spi.0.to_be_bytes();
                inner.push(Payload::new(PayloadBody::Delete(Delete {
                    protocol: proto,
                    spi_size: 4,
                    spis: &spis,
                })));
            }
        }
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::INFORMATIONAL, id, false);
        if sa.keys.is_none() {
            return Err(CommandError::Busy);
        }
        let msgs = sa
            .protect(&mut *self.rng, &self.config, header, &inner)
            .map_err(|e| CommandError::Config(e.to_string()))?;
        let policy = match what {
            Work::Liveness => sa.liveness.policy().unwrap_or(self.config.retransmit),
            _ => self.config.retransmit,
        };
        for m in &msgs {
            self.send(sa.local, sa.remote, m);
        }
        sa.requests.start(now, msgs, policy);
        sa.pending = Some(Pending::Work(what));
        Ok(())
    }

    /// Sends a request once, without waiting for or retransmitting it, and consumes its
    /// message ID (a last word on an SA we forget right away).
    pub(super) fn send_once(
        &mut self,
        sa: &mut IkeSa,
        exchange: ExchangeType,
        inner: &[Payload<'_>],
    ) {
        if sa.requests.busy() {
            sa.requests.abandon();
        }
        let id = sa.requests.next_id();
        let header = sa.header(exchange, id, false);
        if let Ok(msgs) = sa.protect(&mut *self.rng, &self.config, header, inner) {
            for m in &msgs {
                self.send(sa.local, sa.remote, m);
            }
        }
    }

    /// Deletes an IKE SA at once: one INFORMATIONAL with a Delete payload, no wait.
    pub(super) fn delete_now(&mut self, sa: &mut IkeSa, reason: Option<DownReason>) {
        self.send_once(
            sa,
            ExchangeType::INFORMATIONAL,
            &[Payload::new(PayloadBody::Delete(Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: &[],
            }))],
        );
        if let Some(r) = reason {
            self.ike_down(sa, r);
        }
    }

    /// The IKE SA and its children are gone: events (if the application knows the SA).
    pub(super) fn ike_down(&mut self, sa: &mut IkeSa, reason: DownReason) {
        let child_reason = match reason {
            DownReason::PeerUnreachable | DownReason::PeerLostSa => reason.clone(),
            _ => DownReason::IkeSaGone,
        };
        self.children_down(sa, child_reason);
        if sa.announced {
            sa.announced = false;
            let name = self
                .peers
                .get(&sa.peer)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            self.event(Event::IkeSaDown {
                handle: IkeSaHandle(sa.our_spi()),
                peer: name,
                reason,
            });
        }
    }
}

impl Endpoint {
    /// Starts re-authenticating IKE SA `old` (our SPI): a new IKE SA that replaces it.
    pub(super) fn start_reauth(
        &mut self,
        now: Instant,
        old: IkeSpi,
        reason: ReauthReason,
    ) -> Result<IkeSaHandle, CommandError> {
        let o = self.sas.get(&old).ok_or(CommandError::NoSuchSa)?;
        let (peer, local, remote) = (
            o.peer,
            SocketAddr::new(o.local.ip(), IKE_PORT),
            SocketAddr::new(o.remote.ip(), IKE_PORT),
        );
        let new = self.initiate(now, peer, local, remote)?;
        self.sas.update(&new.0, |n| {
            n.replaces = Some(old);
            n.reauth_reason = Some(reason);
        });
        self.sas.update(&old, |o| o.being_replaced = true);
        Ok(new)
    }

    /// Queues work on an SA and starts it if the SA is idle.
    pub(super) fn enqueue(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        work: Work,
    ) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get_mut(&h.0).ok_or(CommandError::NoSuchSa)?;
        let r = if matches!(sa.life, Life::Rekeyed(_)) {
            Err(CommandError::NoSuchSa)
        } else if sa.push_work(work) {
            Ok(())
        } else {
            Err(CommandError::Busy)
        };
        self.core.pump(now, sa);
        self.run_actions(now);
        r
    }

    /// Starts an IKE SA with peer configuration `peer` from `local` to `remote` (normally
    /// port 500 on both sides).
    pub fn initiate(
        &mut self,
        now: Instant,
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaHandle, CommandError> {
        let cfg = self.peers.get(&peer).ok_or(CommandError::NoSuchPeer)?;
        let group = first_group(&cfg.ike_proposals)
            .ok_or_else(|| CommandError::Config("IKE proposals name no DH group".into()))?;
        let liveness = cfg.liveness;
        let kex = self
            .provider
            .key_exchange(group.0)
            .and_then(|k| k.start(&mut *self.rng))
            .map_err(|e| CommandError::Config(e.to_string()))?;
        let spi_i = self.unused_ike_spi();
        let ni = self.random_bytes(NONCE_LEN);
        let mut sa = IkeSa {
            peer,
            initiator: true,
            spi_i,
            spi_r: IkeSpi(0),
            local,
            remote,
            state: State::InitSent(Box::new(InitSent {
                ni,
                kex,
                cookie: None,
                rounds: 0,
                sent: Vec::new(),
                refused: None,
            })),
            requests: Requests::new(MessageId(0)),
            responses: Responses::new(MessageId(0)),
            liveness: Liveness::new(liveness, now),
            pending: None,
            queue: VecDeque::new(),
            keys: None,
            proposal: None,
            nat: (false, false),
            children: Vec::new(),
            life: Life::Normal,
            peer_id: None,
            auth: AuthInfo::default(),
            announced: false,
            nonce: Vec::new(),
            created: now,
            established_at: None,
            soft: None,
            hard: None,
            rekeys_since_auth: 0,
            replaces: None,
            reauth_reason: None,
            being_replaced: false,
            deferred: Vec::new(),
            cleanup_at: None,
            peer_seen: false,
            fragmentation: false,
            frags: Default::default(),
            fetching: None,
            cp: None,
            followup: None,
        };
        let msg = self
            .init_request(&sa)
            .map_err(|e| CommandError::Config(e.to_string()))?;
        if let State::InitSent(st) = &mut sa.state {
            st.sent = msg.clone();
        }
        sa.requests
            .start(now, vec![msg.clone()], self.config.retransmit);
        self.send(local, remote, &msg);
        self.sas.insert(spi_i, sa);
        Ok(IkeSaHandle(spi_i))
    }

    /// Serves `peer` over IKEv1 only (`version = "ikev1"`): we never initiate IKEv2 with it
    /// (the facade routes its commands to IKEv1) and refuse its IKE_SA_INIT with
    /// NO_PROPOSAL_CHOSEN, as strongSwan does, saying why in a [`Failure::Ikev2NotServed`].
    pub fn refuse_ikev2(&mut self, peer: PeerId) {
        self.v1_only.insert(peer);
    }

    /// Drops an IKE SA we initiated that still waits for the answer to IKE_SA_INIT, without
    /// a word to the peer and without an event: `ikev2-preferred` gives way to IKEv1. Returns
    /// the unprotected error notify the peer answered with, if one came (`Some(None)`: no
    /// answer at all), or `None` when `h` is no such SA (answered already, or gone).
    pub fn abandon_init(&mut self, h: IkeSaHandle) -> Option<Option<NotifyType>> {
        let sa = self.sas.get(&h.0)?;
        let State::InitSent(st) = &sa.state else {
            return None;
        };
        let refused = st.refused;
        if !sa.initiator {
            return None;
        }
        self.sas.remove(&h.0);
        Some(refused)
    }

    /// Deletes an established IKE SA (and its Child SAs) with an INFORMATIONAL exchange.
    pub fn delete_ike_sa(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        self.enqueue(now, h, Work::DeleteIke)
    }

    /// Creates another Child SA under an IKE SA for policy `policy` (one of the peer
    /// configuration's policies) with CREATE_CHILD_SA.
    pub fn create_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        policy: PolicyId,
    ) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get(&h.0).ok_or(CommandError::NoSuchSa)?;
        if self.peers[&sa.peer].policy(policy).is_none() {
            return Err(CommandError::Config("no such policy".into()));
        }
        self.enqueue(
            now,
            h,
            Work::CreateChild {
                policy,
                rekey: None,
                group: None,
                tries: 0,
            },
        )
    }

    /// Rekeys the Child SA pair with this inbound SPI (RFC 7296 §2.8): a new pair is made
    /// with CREATE_CHILD_SA and REKEY_SA, then the old one is deleted (make-before-break).
    /// The data plane calls this at its soft byte limit.
    pub fn rekey_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        inbound: Spi,
    ) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get(&h.0).ok_or(CommandError::NoSuchSa)?;
        let Some(c) = sa.child(inbound) else {
            return Err(CommandError::NoSuchSa);
        };
        let policy = c.policy;
        self.enqueue(
            now,
            h,
            Work::CreateChild {
                policy,
                rekey: Some(inbound),
                group: None,
                tries: 0,
            },
        )
    }

    /// Rekeys the IKE SA (RFC 7296 §1.3.2, §2.18): a new IKE SA with new SPIs and keys
    /// derived from the old SK_d takes over the Child SAs, then the old one is deleted.
    /// The handle changes ([`Event::IkeSaRekeyed`]); the old one keeps working for commands.
    pub fn rekey_ike_sa(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        self.enqueue(
            now,
            h,
            Work::RekeyIke {
                group: None,
                tries: 0,
            },
        )
    }

    /// Re-authenticates (R-V2-11, RFC 7296 §2.8.3): a new IKE SA from IKE_SA_INIT with new
    /// Child SAs for every policy; once they are up the old IKE SA is deleted. Returns the
    /// new IKE SA's handle.
    pub fn reauthenticate(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
    ) -> Result<IkeSaHandle, CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get(&h.0).ok_or(CommandError::NoSuchSa)?;
        let r = if sa.usable() && !sa.being_replaced {
            self.start_reauth(now, h.0, ReauthReason::Command)
        } else {
            Err(CommandError::Busy)
        };
        self.run_actions(now);
        r
    }

    /// Deletes one Child SA pair (named by its inbound SPI). The data plane calls this at
    /// its hard byte limit.
    pub fn delete_child_sa(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        inbound: Spi,
    ) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get(&h.0).ok_or(CommandError::NoSuchSa)?;
        if sa.child(inbound).is_none() {
            return Err(CommandError::NoSuchSa);
        }
        self.enqueue(now, h, Work::DeleteChild(inbound))
    }

    /// ESP or AH arrived from the peer on a Child SA of IKE SA `h` (the data plane's inbound
    /// counters moved): the peer is alive, so the liveness check waits for a full interval
    /// of silence from now (RFC 7296 §2.4 counts protected ESP/AH as well as IKE). Unknown
    /// handles are ignored.
    pub fn traffic_seen(&mut self, now: Instant, h: IkeSaHandle) {
        let h = self.resolve(h);
        self.sas.update(&h.0, |sa| sa.liveness.on_receive(now));
    }

    /// Sends a liveness check now (an empty INFORMATIONAL request).
    pub fn check_liveness(&mut self, now: Instant, h: IkeSaHandle) -> Result<(), CommandError> {
        self.enqueue(now, h, Work::Liveness)
    }
}
