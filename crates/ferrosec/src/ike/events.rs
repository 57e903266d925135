//! What the IKE task does with the engine's events: SAs up, rekeyed and down into the tables and the data plane, failures and pressure reports into the system log, counters for `show`.

use super::*;

impl IkeTask {
    pub(super) fn event(&mut self, e: Event) {
        match e {
            Event::IkeSaUp(info) => self.ike_up(info),
            Event::IkeSaRekeyed { old, new } => self.ike_rekeyed(old, new),
            Event::HalfOpenPressure(r) => self.half_open_pressure(&r),
            Event::UnservedVersion {
                major,
                count,
                sources,
            } => self.unserved_version(major, count, &sources),
            Event::ChildSaRekeyed {
                old_inbound_spi,
                new_inbound_spi,
                ..
            } => {
                // The new pair's inbound SA went in at its ChildSaUp; its outbound SA goes in
                // now, when the peer has installed the matching inbound SA (the newest SA of a
                // policy carries the outbound traffic). The old inbound SA stays until its
                // delete.
                if let Some((_, pending)) = self.pending_outbound.remove(&new_inbound_spi) {
                    pending.activate();
                }
                tracing::debug!(
                    "Child SA 0x{:08x} replaced by 0x{:08x}",
                    old_inbound_spi.0,
                    new_inbound_spi.0
                );
            }
            Event::ChildSaOutbound { inbound_spi, .. } => {
                // The IKEv1 quick-mode responder's pair: HASH(3) came, the peer has it.
                if let Some((_, pending)) = self.pending_outbound.remove(&inbound_spi) {
                    pending.activate();
                }
            }
            Event::ChildSaExpired { inbound_spi, .. } => {
                let tunnel = self
                    .tables
                    .lock()
                    .child
                    .get(&inbound_spi)
                    .map(|c| c.slot.tunnel.clone());
                if let Some(t) = tunnel {
                    self.log.record(
                        Severity::Warning,
                        &format!("ipsec-tunnel {t}"),
                        format!(
                            "IPsec SA 0x{:08x} reached its hard lifetime; deleting it",
                            inbound_spi.0
                        ),
                    );
                }
            }
            Event::ChildSaUp(info) => self.child_up(info),
            Event::FetchCertificate { handle, peer, url } => {
                self.log.record(
                    Severity::Info,
                    &format!("ike-gateway {peer}"),
                    format!("the peer sent its certificate as hash and URL; fetching {url}"),
                );
                let Some(tx) = self
                    .commands_tx
                    .as_ref()
                    .and_then(mpsc::WeakSender::upgrade)
                else {
                    self.endpoint.certificate_fetched(
                        Instant::now(),
                        handle,
                        &url,
                        Err("this daemon cannot fetch".into()),
                    );
                    return;
                };
                tokio::spawn(async move {
                    let result = crate::fetch::fetch(&url).await;
                    let _ = tx
                        .send(Command::CertificateFetched {
                            handle,
                            url,
                            result,
                        })
                        .await;
                });
            }
            Event::FetchCrl { handle, peer, url } => {
                self.log.record(
                    Severity::Info,
                    &format!("ike-gateway {peer}"),
                    format!(
                        "the peer's certificate names the CRL distribution point {url}; \
                         fetching it"
                    ),
                );
                let Some(tx) = self
                    .commands_tx
                    .as_ref()
                    .and_then(mpsc::WeakSender::upgrade)
                else {
                    let got = self.endpoint.crl_fetched(
                        Instant::now(),
                        handle,
                        &url,
                        Err("this daemon cannot fetch".into()),
                    );
                    let (severity, text) = crl_words(&url, &got);
                    self.log
                        .record(severity, &format!("ike-gateway {peer}"), text);
                    return;
                };
                tokio::spawn(async move {
                    let result = crate::fetch::fetch_at_most(&url, crate::fetch::MAX_CRL).await;
                    let _ = tx
                        .send(Command::CrlFetched {
                            handle,
                            peer,
                            url,
                            result,
                        })
                        .await;
                });
            }
            Event::ChildSaDown {
                ike_sa,
                inbound_spi,
                outbound_spi,
                reason,
            } => self.child_down(ike_sa, inbound_spi, outbound_spi, &reason),
            Event::IkeSaDown {
                handle,
                peer,
                reason,
            } => {
                self.virtual_config_down(handle, &peer);
                let (rekeyed, entry) = {
                    let mut t = self.tables.lock();
                    let entry = t.remove_ike(&handle);
                    let others = entry
                        .as_ref()
                        .is_some_and(|gone| t.peer_established(gone.peer_key(), None));
                    // Declared dead: the liveness check (IKEv2), R-U-THERE (IKEv1 DPD) or
                    // another request went unanswered through every retransmission.
                    let dead = match reason {
                        DownReason::PeerUnreachable => Some("no-answer"),
                        DownReason::PeerLostSa => Some("lost-sa"),
                        _ => None,
                    };
                    if let (Some(why), Some(e)) = (dead, &entry) {
                        let key = (Arc::clone(&e.gateway), e.version.name(), why);
                        *t.outcomes.liveness_failures.entry(key).or_default() += 1;
                    }
                    (others, entry)
                };
                let obj = format!("ike-gateway {peer}");
                if rekeyed && matches!(reason, DownReason::LocalDelete | DownReason::PeerDelete) {
                    // (The old SA of an IKE rekey leaves with IkeSaRekeyed, not here: this one
                    // was replaced by a re-authentication, ours or the peer's.)
                    self.log.record(
                        Severity::Info,
                        &obj,
                        format!(
                            "old IKE SA {} removed after re-authentication ({reason})",
                            spi_pair(&entry)
                        ),
                    );
                } else {
                    let sev = match reason {
                        DownReason::LocalDelete => Severity::Info,
                        _ => Severity::Warning,
                    };
                    self.log.record(
                        sev,
                        &obj,
                        format!("IKE SA down: {reason}{}", peer_of(&entry)),
                    );
                    self.fail_waiters(&peer, &format!("IKE SA with {peer} went down: {reason}"));
                    if reason == DownReason::PeerUnreachable
                        && let Some(gw) = self.gateway_index(&peer)
                    {
                        // A peer that stopped answering may have moved (dynamic DNS).
                        self.resolve_soon(gw);
                    }
                    if matches!(reason, DownReason::PeerUnreachable | DownReason::PeerLostSa)
                        && let Some(gw) = self.gateway_index(&peer)
                        && self.endpoint.negotiating(self.ids[gw].0)
                    {
                        // The engine starts again at once as the SA's initiator (R-V2-3).
                        self.log.record(
                            Severity::Info,
                            &obj,
                            format!(
                                "negotiation started again{} (the IKE SA was declared dead)",
                                // The engine restarts at the configured address, which an
                                // FQDN peer's lookup may have changed since the SA began.
                                self.gateways[gw]
                                    .peer_address
                                    .or(entry.as_ref().map(|e| e.remote.ip()))
                                    .map(|a| format!(" with {a}"))
                                    .unwrap_or_default()
                            ),
                        );
                    }
                }
            }
            Event::VersionFallback {
                peer,
                from,
                to,
                why,
            } => self.version_fallback(&peer, from, to, &why),
            Event::PeerHint { handle, peer, hint } => {
                let remote = self.tables.lock().ike.get(&handle).map(|e| e.remote);
                self.log.record(
                    Severity::Warning,
                    &format!("ike-gateway {peer}"),
                    match remote {
                        Some(r) => format!("{hint} (peer {r})"),
                        None => hint.to_string(),
                    },
                );
            }
            Event::Failed {
                handle,
                peer,
                exchange,
                ike_sa_survives,
                reason,
            } => {
                let obj = if self.gateway_index(&peer).is_some() {
                    format!("ike-gateway {peer}")
                } else {
                    format!("peer {peer}")
                };
                let what = if ike_sa_survives {
                    format!("IPsec SA negotiation failed in {exchange}")
                } else {
                    format!("IKE negotiation failed in {exchange}")
                };
                self.log
                    .record(Severity::Error, &obj, format!("{what}: {reason}"));
                *self
                    .tables
                    .lock()
                    .outcomes
                    .failed
                    .entry((peer.clone(), failure_kind(&reason)))
                    .or_default() += 1;
                if !ike_sa_survives && let Some(h) = handle {
                    self.tables.lock().remove_ike(&h);
                }
                self.fail_waiters(&peer, &format!("{what}: {reason}"));
            }
        }
    }

    pub(super) fn ike_up(&mut self, info: IkeSaInfo) {
        {
            let version = super::IkeVersionTag::of_sa(&self.endpoint, info.handle).name();
            let gw = self.names.get(&info.peer);
            if let Some(took) = self.handshake_took(Instant::now(), &info) {
                self.tables.handshakes().observe(&gw, version, took);
            }
            *self
                .tables
                .lock()
                .outcomes
                .ike_established
                .entry((gw, version))
                .or_default() += 1;
        }
        let gw = self.gateway_index(&info.peer);
        let lifetime = gw.map_or(0, |g| secs_u32(self.gateways[g].ike_lifetime));
        let p = &info.proposal;
        let algos = format!(
            "{}/{}/prf-{}/{}",
            encr_name(p.encr),
            integ_name(p.integ),
            prf_name(p.prf),
            ke_names(p.ke, &p.addke)
        );
        let nat = match info.nat {
            (false, false) => "no NAT".to_owned(),
            (true, false) => "we are behind a NAT".to_owned(),
            (false, true) => "the peer is behind a NAT".to_owned(),
            (true, true) => "both sides are behind NATs".to_owned(),
        };
        let gateway = self.names.get(&info.peer);
        let now = Instant::now();
        let version = super::IkeVersionTag::of_sa(&self.endpoint, info.handle);
        let rekey = {
            let mut t = self.tables.lock();
            // Another IKE SA of this gateway with the same peer (address and port, and
            // identity: see `Slot`) is the one a make-before-break reauthentication replaces;
            // on a `dynamic` gateway the IKE SAs of other peers are new IKE SAs, not rekeys.
            let rekey = t.peer_established(
                (&info.peer, info.remote, Some(&info.peer_id)),
                Some(info.handle),
            );
            t.insert_ike(
                info.handle,
                IkeEntry {
                    gateway,
                    state: IkeState::Established,
                    version,
                    initiator: info.initiator,
                    local: info.local,
                    remote: info.remote,
                    nat: info.nat,
                    algos: Some(IkeAlgos::from(&info.proposal)),
                    peer_id: Some(Arc::new(info.peer_id.clone())),
                    auth: IkeEntry::auth_of(&info.auth),
                    since: now,
                    lifetime,
                    reauth_after: reauth_after(now, info.reauth_at),
                },
            );
            rekey
        };
        // A re-authentication (RFC 7296 §2.8.3) is a new IKE SA beside the old one: ours
        // says so and why; one the peer starts shows as a second IKE SA of the same peer.
        let reauth_side = match (&info.reauth, rekey) {
            (Some(_), _) => Some("local"),
            (None, true) if !info.initiator => Some("peer"),
            _ => None,
        };
        if let Some(side) = reauth_side {
            let key = (self.names.get(&info.peer), "reauthentication", side);
            *self.tables.lock().outcomes.rekeys.entry(key).or_default() += 1;
        }
        let (verb, why) = match (&info.reauth, rekey) {
            (Some(r), _) => (
                "re-authenticated",
                format!(" ({}; replaces SPI {:016x})", r.reason, r.replaces.0.0),
            ),
            (None, true) if !info.initiator => ("re-authenticated by the peer", String::new()),
            _ => ("established", String::new()),
        };
        let next = info
            .reauth_at
            .map(|t| {
                format!(
                    "; next re-authentication in {}s",
                    t.saturating_duration_since(now).as_secs()
                )
            })
            .unwrap_or_default();
        self.log.record(
            Severity::Info,
            &format!("ike-gateway {}", info.peer),
            format!(
                "IKE SA {verb} with {} as {}{why}: {}{algos}; peer ID {}; {}; {nat}; SPIs \
                 {:016x}/{:016x}{next}",
                info.remote,
                if info.initiator {
                    "initiator"
                } else {
                    "responder"
                },
                match version {
                    super::IkeVersionTag::V2 => "",
                    super::IkeVersionTag::V1Main => "IKEv1 main mode, ",
                    super::IkeVersionTag::V1Aggressive => "IKEv1 aggressive mode, ",
                },
                info.peer_id,
                auth_words(&info.auth),
                info.spi_i.0,
                info.spi_r.0,
            ),
        );
        self.virtual_config_up(&info);
    }

    pub(super) fn ike_rekeyed(&mut self, old: IkeSaHandle, new: IkeSaInfo) {
        let gw = self.gateway_index(&new.peer);
        let lifetime = gw.map_or(0, |g| secs_u32(self.gateways[g].ike_lifetime));
        let gateway = self.names.get(&new.peer);
        let now = Instant::now();
        {
            let mut t = self.tables.lock();
            t.remove_ike(&old);
            t.insert_ike(
                new.handle,
                IkeEntry {
                    gateway,
                    state: IkeState::Established,
                    version: super::IkeVersionTag::of_sa(&self.endpoint, new.handle),
                    initiator: new.initiator,
                    local: new.local,
                    remote: new.remote,
                    nat: new.nat,
                    algos: Some(IkeAlgos::from(&new.proposal)),
                    peer_id: Some(Arc::new(new.peer_id.clone())),
                    auth: IkeEntry::auth_of(&new.auth),
                    since: now,
                    lifetime,
                    reauth_after: reauth_after(now, new.reauth_at),
                },
            );
            for c in t.child.values_mut().filter(|c| c.ike == old) {
                c.ike = new.handle;
            }
            drop(t);
            self.virtual_config_rekeyed(old, &new);
            let mut t = self.tables.lock();
            // The rekey's initiator is the new SA's (RFC 7296 §2.18).
            let side = if new.initiator { "local" } else { "peer" };
            let key = (self.names.get(&new.peer), "ike-sa", side);
            *t.outcomes.rekeys.entry(key).or_default() += 1;
        }
        let p = &new.proposal;
        self.log.record(
            Severity::Info,
            &format!("ike-gateway {}", new.peer),
            format!(
                "IKE SA rekeyed with {}: {}/{}/prf-{}/{}{}; SPIs {:016x}/{:016x} replace {:016x}",
                new.remote,
                encr_name(p.encr),
                integ_name(p.integ),
                prf_name(p.prf),
                ke_names(p.ke, &p.addke),
                followup_note(p.additional().count()),
                new.spi_i.0,
                new.spi_r.0,
                old.0.0,
            ),
        );
    }

    pub(super) fn child_up(&mut self, info: ChildSaInfo) {
        let (tunnel, proxy_id) = split_policy(&info.policy);
        let (tunnel, proxy_id) = (tunnel.to_owned(), proxy_id.to_owned());
        let at = self.gateways.policy(&tunnel, &proxy_id);
        let policy = at.map(|(g, i)| self.gateways[g].policies[i].clone());
        let lifetime = policy.as_ref().map_or(Duration::ZERO, |p| p.lifetime);
        let index = at.map(|(_, i)| i);
        if let Some(i) = index {
            self.child_requested.remove(&(info.ike_sa, i));
        }
        let counters = Arc::new(crate::counters::SaCounters::default());
        let encr = child_encr_name(info.encr);
        let integ = child_integ_name(info.integ);
        let (tunnel_name, proxy_name) = (self.names.get(&tunnel), self.names.get(&proxy_id));
        let kes_name = info.key_exchanges.as_ref().map(|k| match k.split_first() {
            None => "none".to_owned(),
            Some((g, rest)) => ke_names(Some(*g), rest),
        });
        let kes = KesTag::of(info.key_exchanges.as_deref());
        let (slot, rekey, reauth) = {
            let mut t = self.tables.lock();
            let slot = Slot {
                peer: info.remote,
                peer_id: t.ike.get(&info.ike_sa).and_then(|e| e.peer_id.clone()),
                tunnel: tunnel_name,
                proxy_id: proxy_name,
            };
            let rekey = t.slot_taken(&slot);
            // A pair of another IKE SA in the slot: a re-authentication's new pair.
            let reauth = rekey
                && !t
                    .child
                    .values()
                    .any(|c| c.slot == slot && c.ike == info.ike_sa);
            if rekey
                && !reauth
                && let Some(gw) = t.ike.get(&info.ike_sa).map(|e| Arc::clone(&e.gateway))
            {
                let side = if info.initiator { "local" } else { "peer" };
                *t.outcomes.rekeys.entry((gw, "ipsec-sa", side)).or_default() += 1;
            }
            t.insert_child(
                info.inbound_spi,
                ChildEntry {
                    ike: info.ike_sa,
                    slot: slot.clone(),
                    outbound: info.outbound_spi,
                    encr: info.encr,
                    integ: info.integ,
                    udp: info.udp_encap,
                    ah: info.protocol == ferrosec_wire::ikev2::ProtocolId::AH,
                    esn: info.esn,
                    manual: false,
                    since: Instant::now(),
                    lifetime,
                    counters: Arc::clone(&counters),
                    key_exchanges: kes,
                },
            );
            (slot, rekey, reauth)
        };
        *self
            .tables
            .lock()
            .outcomes
            .child_installed
            .entry((self.names.get(&tunnel), if rekey { "rekey" } else { "new" }))
            .or_default() += 1;
        let verb = match (rekey, reauth) {
            (true, true) => "re-established (IKE SA re-authenticated)",
            (true, false) => "rekeyed",
            _ => "up",
        };
        self.log.record(
            Severity::Info,
            &format!("ipsec-tunnel {tunnel}"),
            format!(
                "IPsec SA {verb} for proxy-id {proxy_id}: local [{}] remote [{}], SPI in \
                 0x{:08x} out 0x{:08x}, {encr}/{integ}{}, {}",
                info.local_ts,
                info.remote_ts,
                info.inbound_spi.0,
                info.outbound_spi.0,
                // The key exchanges of its own keys, when the pair had any (PFS, and RFC 9370
                // additional ones in IKE_FOLLOWUP_KE): "/group19+ml-kem-768".
                kes_name
                    .as_deref()
                    .filter(|n| *n != "none")
                    .map(|n| format!(
                        "/{n}{}",
                        followup_note(
                            info.key_exchanges
                                .as_ref()
                                .map_or(0, |k| k.len().saturating_sub(1))
                        )
                    ))
                    .unwrap_or_default(),
                match (
                    info.protocol == ferrosec_wire::ikev2::ProtocolId::AH,
                    info.udp_encap
                ) {
                    (true, _) => "AH",
                    (false, true) => "ESP in UDP (NAT)",
                    (false, false) => "ESP",
                }
            ),
        );
        if let Some(keys) = &mut self.esp_keys {
            keys.insert(
                info.inbound_spi,
                crate::keyexport::EspPair::of(&tunnel, &info),
            );
        }
        if let Some(dp) = &self.dataplane {
            let window = policy.as_ref().and_then(|p| p.replay_window);
            // The shorter of ours and what the peer negotiated (IKEv1 kilobyte lifetimes).
            let lifesize = match (policy.and_then(|p| p.lifesize), info.lifesize) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let defer = rekey || info.outbound_deferred;
            match dp.install(&tunnel, &info, window, lifesize, counters, defer) {
                Ok(Some(pending)) => {
                    self.pending_outbound
                        .insert(info.inbound_spi, (slot, pending));
                }
                Ok(None) => {}
                Err(e) => self.log.record(
                    Severity::Warning,
                    &format!("ipsec-tunnel {tunnel}"),
                    format!(
                        "IPsec SA 0x{:08x} not installed in the data plane: {e}",
                        info.inbound_spi.0
                    ),
                ),
            }
        }
    }

    pub(super) fn child_down(
        &mut self,
        _ike: IkeSaHandle,
        inbound: Spi,
        outbound: Spi,
        reason: &DownReason,
    ) {
        // A pair that lost a rekey collision never carried outbound traffic.
        let was_pending = self.pending_outbound.remove(&inbound).is_some();
        if let Some(keys) = &mut self.esp_keys {
            keys.remove(&inbound);
        }
        let (entry, replaced, reauth) = {
            let mut t = self.tables.lock();
            let entry = t.remove_child(&inbound);
            let replaced = entry.as_ref().is_some_and(|e| t.slot_taken(&e.slot));
            // Replaced by a pair of another IKE SA: a re-authentication.
            let reauth = replaced
                && entry
                    .as_ref()
                    .is_some_and(|e| !t.child.values().any(|c| c.slot == e.slot && c.ike == e.ike));
            (entry, replaced, reauth)
        };
        if let Some(dp) = &self.dataplane {
            dp.remove(
                inbound,
                outbound,
                replaced.then_some(REKEYED_INBOUND_LINGER),
            );
        }
        let Some(e) = entry else {
            return;
        };
        // The last pair carrying this proxy ID's traffic is gone without a switch to its
        // successor (re-authentication makes new pairs without `ChildSaRekeyed`): the
        // successor carries the traffic from now on.
        let carriers = self
            .tables
            .lock()
            .child
            .iter()
            .any(|(spi, c)| c.slot == e.slot && !self.pending_outbound.contains_key(spi));
        let orphaned: Vec<Spi> = if was_pending || carriers {
            Vec::new()
        } else {
            self.pending_outbound
                .iter()
                .filter(|(_, (slot, _))| *slot == e.slot)
                .map(|(spi, _)| *spi)
                .collect()
        };
        for spi in orphaned {
            if let Some((_, pending)) = self.pending_outbound.remove(&spi) {
                pending.activate();
            }
        }
        let obj = format!("ipsec-tunnel {}", e.slot.tunnel);
        if replaced {
            self.log.record(
                Severity::Info,
                &obj,
                format!(
                    "old IPsec SA of proxy-id {} (SPI in 0x{:08x}) removed after {}",
                    e.slot.proxy_id,
                    inbound.0,
                    if reauth { "re-authentication" } else { "rekey" }
                ),
            );
        } else {
            let sev = match reason {
                DownReason::LocalDelete => Severity::Info,
                _ => Severity::Warning,
            };
            self.log.record(
                sev,
                &obj,
                format!(
                    "IPsec SA down for proxy-id {} (SPI in 0x{:08x}): {reason}",
                    e.slot.proxy_id, inbound.0
                ),
            );
        }
    }
    /// An IKEv1 peer knocking: say so, naming the gateway when the address is a configured
    /// peer's (otherwise the tunnel just looks unreachable).
    /// `ikev2-preferred`: the IKEv2 attempt `from` gave way to IKEv1 (`to`): its table entry
    /// moves to the IKEv1 SA, and the log says why and what runs now.
    pub(super) fn version_fallback(
        &mut self,
        peer: &str,
        from: IkeSaHandle,
        to: Option<IkeSaHandle>,
        why: &ferrosec_ike::event::FallbackReason,
    ) {
        let obj = format!("ike-gateway {peer}");
        let entry = self.tables.lock().remove_ike(&from);
        let Some(to) = to else {
            self.log.record(
                Severity::Info,
                &obj,
                format!(
                    "ikev2-preferred: {why}; the peer is negotiating IKEv1 with us already, so                      IKEv2 is given up and no second IKEv1 negotiation started"
                ),
            );
            return;
        };
        let version = super::IkeVersionTag::of_sa(&self.endpoint, to);
        let mode = match version {
            super::IkeVersionTag::V1Aggressive => "IKEv1 aggressive mode",
            _ => "IKEv1 main mode",
        };
        let remote = entry.as_ref().map(|e| e.remote);
        if let Some(mut e) = entry {
            e.version = version;
            e.since = Instant::now();
            self.tables.lock().insert_ike(to, e);
        }
        self.log.record(
            Severity::Warning,
            &obj,
            format!(
                "ikev2-preferred: {why}; falling back to {mode}: negotiation started{}",
                remote.map(|r| format!(" with {r}")).unwrap_or_default()
            ),
        );
    }

    pub(super) fn unserved_version(
        &mut self,
        major: u8,
        count: u64,
        sources: &[std::net::SocketAddr],
    ) {
        let names: Vec<String> = sources
            .iter()
            .map(|a| {
                match self
                    .endpoint
                    .peers()
                    .find(|(_, p)| p.peer_addr == Some(a.ip()))
                {
                    Some((_, p)) => format!("{a} (ike-gateway {})", p.name),
                    None => a.to_string(),
                }
            })
            .collect();
        self.log.record(
            Severity::Warning,
            "global",
            format!(
                "IKEv{major} message(s) dropped: {count} from {}; this build speaks IKEv2 only \
                 (configure the peer for IKEv2)",
                names.join(", ")
            ),
        );
    }

    /// One system log line for an interval of half-open pressure (never one per packet).
    pub(super) fn half_open_pressure(&mut self, r: &ferrosec_ike::halfopen::PressureReport) {
        let (threshold, limit, per_address) = self.endpoint.half_open_limits();
        let secs = r.interval.as_secs();
        let top = r
            .top_sources
            .iter()
            .map(|(ip, n)| format!("{ip} ({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        let others = if r.others > 0 {
            format!(" and {} from untracked sources", r.others)
        } else {
            String::new()
        };
        let (severity, text) = if r.refused() > 0 {
            (
                Severity::Warning,
                format!(
                    "half-open limit reached: {} IKE_SA_INIT requests refused in the last {secs} s \
                     ({} over the per-address limit of {per_address}, {} at the global limit of \
                     {limit}, {} over the key-exchange rate); {} old half-open SAs replaced, {} \
                     cookies sent, {} half-open now; top sources {top}{others}",
                    r.refused(),
                    r.per_address,
                    r.global,
                    r.dh_rate,
                    r.evicted,
                    r.cookies_sent,
                    r.half_open,
                ),
            )
        } else {
            (
                Severity::Info,
                format!(
                    "cookie challenge active: {} cookies sent in the last {secs} s \
                     ({} half-open IKE SAs, cookies from {threshold}); {} old half-open SAs replaced",
                    r.cookies_sent, r.half_open, r.evicted,
                ),
            )
        };
        self.log.record(severity, "global", text);
    }

    /// Copies the engine's half-open counters where `show` reads them (one small copy per
    /// batch, under the lock the batch takes anyway).
    pub(super) fn publish_counters(&mut self) {
        let s = self.endpoint.half_open_stats();
        let (threshold, limit, per_address) = self.endpoint.half_open_limits();
        let row = IkeCountersRow {
            ike_sas: self.endpoint.ike_sa_count() as u64,
            half_open: self.endpoint.half_open_count() as u64,
            cookie_threshold: threshold as u64,
            half_open_limit: limit as u64,
            half_open_per_address: per_address as u64,
            cookies_sent: s.cookies_sent,
            refused_per_address: s.refused_per_address,
            refused_global: s.refused_global,
            refused_dh_rate: s.refused_dh_rate,
            evicted: s.evicted,
            tombstones: self.endpoint.tombstone_count() as u64,
            tombstone_answers: self.endpoint.tombstone_stats().answered,
        };
        // Summed by gateway name: a gateway a reload replaced has a new peer ID, and its
        // counts under the old one still count.
        let mut misses: BTreeMap<(Arc<str>, &'static str), u64> = BTreeMap::new();
        for (peer, version, n) in self.endpoint.liveness_misses() {
            let name = match self.ids.iter().position(|(p, _)| *p == peer) {
                Some(i) => self.gateways.get(i).map(|g| g.name.as_str()),
                None => self.former_ids.get(&peer).map(String::as_str),
            };
            if let Some(name) = name {
                *misses.entry((Arc::from(name), version)).or_default() += n;
            }
        }
        let mut t = self.tables.lock();
        t.counters = row;
        t.outcomes.liveness_misses = misses;
    }
}

/// A bounded label for a failure reason (the metrics' `reason`): one word per kind, never
/// the values the system log line carries.
pub(crate) fn failure_kind(f: &ferrosec_ike::event::Failure) -> &'static str {
    use ferrosec_ike::event::Failure;
    match f {
        Failure::NoProposalChosen(_)
        | Failure::ChildNoProposalChosen { .. }
        | Failure::OfferRefused(_)
        | Failure::BadAnswer(_)
        | Failure::NoIkev1Proposal { .. } => "proposal",
        Failure::AuthFailed => "authentication",
        Failure::IdMismatch { .. } => "peer-id",
        Failure::TsUnacceptable(_)
        | Failure::ProxyIdMismatch { .. }
        | Failure::BadTsAnswer { .. } => "traffic-selectors",
        Failure::PeerRefused { .. } | Failure::ChildRefused { .. } => "peer-refused",
        Failure::PeerUnreachable { .. } | Failure::Stalled { .. } => "unreachable",
        Failure::NoPeerConfig(_) | Failure::Ikev2NotServed(_) => "no-gateway",
        Failure::PeerMisbehaved { .. } => "malformed",
        Failure::AhWithNat => "ah-with-nat",
        Failure::Crypto(_) => "crypto",
        Failure::BadSignature { .. }
        | Failure::AuthMethodMismatch { .. }
        | Failure::Ikev1AuthMethod { .. }
        | Failure::UnsupportedSignature(_) => "authentication",
        Failure::UntrustedIssuer { .. }
        | Failure::CertificateExpired { .. }
        | Failure::CertificateNotYetValid { .. }
        | Failure::CertificateInvalid { .. }
        | Failure::CertificateRevoked(_)
        | Failure::CertificateIdMismatch { .. }
        | Failure::ChainTooLong { .. }
        | Failure::NoPeerCertificate
        | Failure::CertificateFetch { .. } => "certificate",
        _ => "other",
    }
}

/// The log line of a CRL fetch (`crl-fetch`): what was fetched, or why it is not used and
/// that the certificate is accepted without it (strongSwan's default policy).
pub(crate) fn crl_words(
    url: &str,
    got: &Result<ferrosec_crypto::crl::Crl, String>,
) -> (Severity, String) {
    use ferrosec_crypto::x509::fmt_utc;
    match got {
        Ok(c) => (
            Severity::Info,
            format!(
                "fetched the CRL of \"{}\" from {url} ({} revoked, issued {}, next update {}); \
                 kept until then",
                c.issuer(),
                c.revoked_count(),
                fmt_utc(c.this_update()),
                c.next_update().map_or_else(|| "none".to_owned(), fmt_utc)
            ),
        ),
        Err(why) => (
            Severity::Warning,
            format!(
                "could not fetch the CRL at {url}: {why}; the peer's certificate is checked \
                 without it (no CRL available is not a refusal, as strongSwan's default), and \
                 the URL is tried again in 5 minutes"
            ),
        ),
    }
}

/// How both sides authenticated, for the log line of an IKE SA up: `pre-shared key`, or each
/// side's method with its certificate's subject (and the peer's issuer and expiry).
pub(super) fn auth_words(a: &AuthInfo) -> String {
    if a.local == AuthMethod::SHARED_KEY_MIC && a.peer == AuthMethod::SHARED_KEY_MIC {
        return "authenticated with the pre-shared key".into();
    }
    let ours = match &a.local_certificate {
        Some(c) => format!(
            "we signed with {} (certificate \"{}\")",
            AuthInfo::method_name(a.local),
            c.subject
        ),
        None => format!("we authenticated with {}", AuthInfo::method_name(a.local)),
    };
    let theirs = match &a.peer_certificate {
        Some(c) => format!(
            "the peer with {} (certificate \"{}\" issued by \"{}\", valid until {})",
            AuthInfo::method_name(a.peer),
            c.subject,
            c.issuer,
            ferrosec_crypto::x509::fmt_utc(c.not_after)
        ),
        None => format!("the peer with {}", AuthInfo::method_name(a.peer)),
    };
    format!("{ours}, {theirs}")
}

/// How a log line says that RFC 9370 additional key exchanges ran in IKE_FOLLOWUP_KE
/// exchanges (after a CREATE_CHILD_SA): nothing when none did.
fn followup_note(additional: usize) -> String {
    match additional {
        0 => String::new(),
        1 => " (1 additional key exchange in IKE_FOLLOWUP_KE)".into(),
        n => format!(" ({n} additional key exchanges in IKE_FOLLOWUP_KE)"),
    }
}
