//! The IKE task's commands: the control socket's test/clear/rekey requests, on-demand negotiation from the data plane, byte lifetimes, unknown SPIs, and the waiters that answer the CLI.

use super::*;

impl IkeTask {
    pub(super) fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::PeerResolved {
                gateway,
                name,
                result,
            } => self.peer_resolved(&gateway, &name, result),
            Command::TestIkeSa { gateway, reply } => {
                let Some(gw) = self.gateway_index(&gateway) else {
                    let _ = reply.send(Err(not_served(&gateway)));
                    return;
                };
                if self.established(gw).is_some() {
                    let _ = reply.send(Ok(format!(
                        "IKE SA with ike-gateway \"{gateway}\" is already established"
                    )));
                    return;
                }
                if !self.connecting(gw)
                    && let Err(e) = self.initiate(gw, &format!("test vpn ike-sa gateway {gateway}"))
                {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.waiters.push(Waiter {
                    goal: Goal::IkeUp { gateway: gw },
                    reply,
                });
            }
            Command::TestIpsecSa { tunnel, reply } => {
                let Some(gw) = self
                    .gateways
                    .iter()
                    .position(|g| g.policies.iter().any(|p| p.tunnel == tunnel))
                else {
                    let _ = reply.send(Err(format!(
                        "ipsec-tunnel \"{tunnel}\" has no auto-key IKE gateway that this daemon \
                         serves (see the system log)"
                    )));
                    return;
                };
                if self.established(gw).is_none()
                    && !self.connecting(gw)
                    && let Err(e) = self.initiate(gw, &format!("test vpn ipsec-sa tunnel {tunnel}"))
                {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.waiters.push(Waiter {
                    goal: Goal::TunnelUp {
                        gateway: gw,
                        tunnel,
                        requested: BTreeSet::new(),
                    },
                    reply,
                });
            }
            Command::ClearIkeSa { gateway, reply } => {
                let handles: Vec<IkeSaHandle> = {
                    let mut t = self.tables.lock();
                    t.ike
                        .iter_mut()
                        .filter(|(_, e)| gateway.as_deref().is_none_or(|g| g == &*e.gateway))
                        .filter(|(_, e)| e.state == IkeState::Established)
                        .map(|(h, e)| {
                            e.state = IkeState::Deleting;
                            *h
                        })
                        .collect()
                };
                let n = handles
                    .into_iter()
                    .filter(|h| self.endpoint.delete_ike_sa(now, *h).is_ok())
                    .count();
                let _ = reply.send(Ok(format!("cleared {n} IKE SA(s)")));
            }
            Command::ClearIpsecSa { tunnel, reply } => {
                let n = self
                    .pairs(tunnel.as_deref())
                    .into_iter()
                    .filter(|(h, spi)| self.endpoint.delete_child_sa(now, *h, *spi).is_ok())
                    .count();
                let _ = reply.send(Ok(format!("cleared {n} IPsec SA pair(s)")));
            }
            Command::RekeyIpsecSa { tunnel, reply } => {
                let pairs = self.pairs(Some(&tunnel));
                if pairs.is_empty() {
                    let _ = reply.send(Err(format!(
                        "ipsec-tunnel \"{tunnel}\" has no IPsec SA to rekey"
                    )));
                    return;
                }
                let mut n = 0;
                for (h, spi) in pairs {
                    match self.endpoint.rekey_child_sa(now, h, spi) {
                        Ok(()) => n += 1,
                        Err(e) => tracing::debug!("rekey of 0x{:08x}: {e}", spi.0),
                    }
                }
                let _ = reply.send(Ok(format!("rekeying {n} IPsec SA pair(s)")));
            }
            Command::RekeyIkeSa { gateway, reply } => {
                let r = match self
                    .gateway_index(&gateway)
                    .and_then(|g| self.established(g))
                {
                    None => Err(format!(
                        "ike-gateway \"{gateway}\" has no established IKE SA to rekey"
                    )),
                    Some(h) => self
                        .endpoint
                        .rekey_ike_sa(now, h)
                        .map(|()| format!("rekeying the IKE SA with ike-gateway \"{gateway}\""))
                        .map_err(|e| format!("cannot rekey: {e}")),
                };
                let _ = reply.send(r);
            }
            Command::CertificateFetched {
                handle,
                url,
                result,
            } => {
                if let Ok(der) = &result {
                    self.log.record(
                        Severity::Info,
                        "ike",
                        format!(
                            "fetched the peer's certificate from {url} ({} bytes)",
                            der.len()
                        ),
                    );
                }
                self.endpoint.certificate_fetched(now, handle, &url, result);
            }
            Command::CrlFetched {
                handle,
                peer,
                url,
                result,
            } => {
                let got = self.endpoint.crl_fetched(now, handle, &url, result);
                self.tables.lock().fetched_crls = self.endpoint.fetched_crls();
                let (severity, text) = crate::ike::events::crl_words(&url, &got);
                self.log
                    .record(severity, &format!("ike-gateway {peer}"), text);
            }
            Command::ExportKeys { reply } => {
                let r = match &self.esp_keys {
                    None => Err(
                        "key export is off: set allow-key-export = true in [global] \
                                 (and restart the daemon) to export the SAs' keys"
                            .to_owned(),
                    ),
                    Some(esp) => {
                        let t = crate::keyexport::tables(
                            &self.endpoint.export_ike_keys(),
                            esp.values(),
                        );
                        self.log.record(
                            Severity::Warning,
                            "daemon",
                            format!(
                                "the keys of {} IKE SA(s) and {} ESP SA(s) were exported for \
                                 Wireshark (request vpn export-keys)",
                                t.ike_sas, t.esp_sas
                            ),
                        );
                        serde_json::to_string(&t).map_err(|e| e.to_string())
                    }
                };
                let _ = reply.send(r);
            }
            Command::Reload { plan, reply } => {
                let _ = reply.send(self.reload(*plan));
            }
            Command::Shutdown { within, reply } => {
                let handles = self.endpoint.established();
                let n = handles
                    .iter()
                    .filter(|h| self.endpoint.delete_ike_sa(now, **h).is_ok())
                    .count();
                self.shutdown = Some((now + within, reply, n));
            }
        }
    }

    /// Starts IKE_SA_INIT with gateway `gw`; `why` (what asked for it) goes into the log.
    pub(super) fn initiate(&mut self, gw: usize, why: &str) -> Result<(), String> {
        // An FQDN peer is looked up again with each negotiation (R-CFG-4); this one goes to
        // the address known now.
        self.resolve_soon(gw);
        let info = &self.gateways[gw];
        if !info.may_initiate {
            return Err(format!(
                "ike-gateway \"{}\" is passive or has a dynamic peer: it only responds",
                info.name
            ));
        }
        let Some(peer) = info.peer_address else {
            return Err(match &info.fqdn {
                Some((name, _)) => format!(
                    "ike-gateway \"{}\": peer-address \"{name}\" does not resolve (yet); it is \
                     tried again with each attempt and every fqdn-refresh",
                    info.name
                ),
                None => format!("ike-gateway \"{}\" has no peer address", info.name),
            });
        };
        let local_ip = match info.local_address {
            Some(a) => a,
            None => ferrosec_netio::source_address_for(peer)
                .map_err(|e| format!("no route to the peer {peer}: {e}"))?,
        };
        let local = SocketAddr::new(local_ip, ferrosec_ike::v2::IKE_PORT);
        let remote = SocketAddr::new(peer, ferrosec_ike::v2::IKE_PORT);
        if !self.ports.iter().any(|p| p.serves(local)) {
            return Err(format!(
                "ferrosec does not listen on {local}; see the system log for why"
            ));
        }
        let h = self
            .endpoint
            .initiate(Instant::now(), self.ids[gw].0, local, remote)
            .map_err(|e| format!("cannot start IKE with {}: {e}", info.name))?;
        let lifetime = secs_u32(info.ike_lifetime);
        let name = info.name.clone();
        let gateway = self.names.get(&name);
        self.tables.lock().insert_ike(
            h,
            IkeEntry {
                gateway,
                state: IkeState::Connecting,
                version: super::IkeVersionTag::of_peer(&self.endpoint, self.ids[gw].0),
                initiator: true,
                local,
                remote,
                nat: (false, false),
                algos: None,
                peer_id: None,
                auth: None,
                since: Instant::now(),
                lifetime,
                reauth_after: None,
            },
        );
        self.log.record(
            Severity::Info,
            &format!("ike-gateway {name}"),
            format!("negotiation started with {remote} ({why})"),
        );
        Ok(())
    }

    /// Starts a CREATE_CHILD_SA for policy `i` of gateway `gw` under IKE SA `h`, unless one
    /// is in flight.
    pub(super) fn request_child(&mut self, now: Instant, h: IkeSaHandle, gw: usize, i: usize) {
        self.child_requested
            .retain(|_, at| now.duration_since(*at) < CHILD_REQUEST_HOLD);
        if self.child_requested.contains_key(&(h, i)) {
            return;
        }
        let Some(policy) = self.ids.get(gw).and_then(|(_, p)| p.get(i)).copied() else {
            return;
        };
        match self.endpoint.create_child_sa(now, h, policy) {
            Ok(()) => {
                self.child_requested.insert((h, i), now);
            }
            Err(e) => tracing::debug!("CREATE_CHILD_SA for policy {i}: {e}"),
        }
    }

    /// The Child SA pairs (IKE SA, inbound SPI) of one tunnel, or of all.
    pub(super) fn pairs(&self, tunnel: Option<&str>) -> Vec<(IkeSaHandle, Spi)> {
        self.tables
            .lock()
            .child
            .iter()
            .filter(|(_, c)| tunnel.is_none_or(|t| t == &*c.slot.tunnel))
            .map(|(spi, c)| (c.ike, *spi))
            .collect()
    }

    /// R-DP-6: a packet for `tunnel` found no SA: start the negotiation if none runs.
    pub(super) fn on_demand(&mut self, tunnel: &str) {
        self.bring_up(
            tunnel,
            &format!("on demand: traffic for ipsec-tunnel {tunnel}"),
        );
    }

    /// `establish = "always"`: every tunnel that should be up and is not (nothing up, or a
    /// proxy ID missing) is negotiated, each retried with back-off (2 s doubling to 60 s);
    /// once it is whole the back-off starts again from 2 s.
    pub(super) fn keep_up(&mut self, now: Instant) {
        // One pass over the SA table per tick, whatever the number of tunnels.
        let up_by_tunnel = self.tables.proxy_ids_up_by_tunnel();
        let none = BTreeSet::new();
        for i in 0..self.always_on.len() {
            let (tunnel, next, backoff) = self.always_on[i].clone();
            let up = up_by_tunnel.get(&tunnel).unwrap_or(&none);
            let whole = self
                .gateways
                .iter()
                .flat_map(|g| &g.policies)
                .filter(|p| p.tunnel == tunnel)
                .all(|p| up.contains(&p.proxy_id));
            if whole {
                self.always_on[i] = (tunnel, now, ALWAYS_ON_FIRST_RETRY);
                continue;
            }
            if now < next {
                continue;
            }
            self.always_on[i] = (
                tunnel.clone(),
                now + backoff,
                (backoff * 2).min(ALWAYS_ON_MAX_RETRY),
            );
            self.bring_up(
                &tunnel,
                &format!("establish = always: ipsec-tunnel {tunnel} is down"),
            );
        }
    }

    /// Starts what `tunnel` lacks: its IKE SA, or the Child SAs of its missing proxy IDs.
    pub(super) fn bring_up(&mut self, tunnel: &str, why: &str) {
        let Some(gw) = self
            .gateways
            .iter()
            .position(|g| g.policies.iter().any(|p| p.tunnel == tunnel))
        else {
            return;
        };
        if !self.gateways[gw].may_initiate || self.connecting(gw) {
            return;
        }
        if let Some(h) = self.established(gw) {
            let up = self.tables.proxy_ids_up(tunnel);
            let missing: Vec<usize> = self.gateways[gw]
                .policies
                .iter()
                .enumerate()
                .filter(|(_, p)| p.tunnel == tunnel && !up.contains(&p.proxy_id))
                .map(|(i, _)| i)
                .collect();
            for i in missing {
                self.request_child(Instant::now(), h, gw, i);
            }
            return;
        }
        if let Err(e) = self.initiate(gw, why) {
            tracing::debug!("start for {tunnel}: {e}");
        }
    }

    pub(super) fn lifetime(&mut self, e: ferrosec_esp::LifetimeEvent) {
        let found = {
            let t = self.tables.lock();
            t.child
                .iter()
                .find(|(inbound, c)| match e.direction {
                    ferrosec_esp::Direction::Inbound => **inbound == e.spi,
                    ferrosec_esp::Direction::Outbound => c.outbound == e.spi,
                })
                .map(|(inbound, c)| (c.ike, *inbound, c.slot.tunnel.to_string()))
        };
        let Some((ike, inbound, tunnel)) = found else {
            return;
        };
        let way = match e.direction {
            ferrosec_esp::Direction::Inbound => "inbound",
            ferrosec_esp::Direction::Outbound => "outbound",
        };
        let now = Instant::now();
        let (severity, what, r) = match e.kind {
            ferrosec_esp::LifetimeKind::Soft => (
                Severity::Info,
                match e.trigger {
                    ferrosec_esp::LifetimeTrigger::Bytes => {
                        "near its lifesize (90 % sent or 95 % received); rekeying"
                    }
                    ferrosec_esp::LifetimeTrigger::Packets => {
                        "near the end of its 32-bit sequence numbers (no ESN); rekeying"
                    }
                },
                self.endpoint.rekey_child_sa(now, ike, inbound),
            ),
            ferrosec_esp::LifetimeKind::Hard => (
                Severity::Warning,
                "lifesize reached, the SA expired before its rekey finished; deleting the pair",
                self.endpoint.delete_child_sa(now, ike, inbound),
            ),
        };
        // The other direction of a pair already being rekeyed (or deleted) asks again: quiet.
        if let Err(err) = r {
            tracing::debug!("byte lifetime of 0x{:08x} ({way}): {err}", e.spi.0);
            return;
        }
        self.log.record(
            severity,
            &format!("ipsec-tunnel {tunnel}"),
            format!("IPsec SA 0x{:08x} ({way}): {what}", e.spi.0),
        );
    }

    /// R-DP-7: an SA of a pair reached its byte lifetime. Soft: rekey the pair (make-before-
    /// break as for a time-based rekey). Hard: the SA carries nothing more; delete the pair, so
    /// the tunnel is negotiated again (on demand or by the engine's policy).
    /// ESP or AH from `from` with an SPI we have no SA for: if an IKE SA with that peer is
    /// up, tell it (INVALID_SPI, RFC 7296 §2.21.4), so that it deletes the pair it still
    /// sends on, and log it; at most once per [`INVALID_SPI_EVERY`] per peer.
    pub(super) fn unknown_spi(&mut self, spi: Spi, from: std::net::IpAddr) {
        let now = Instant::now();
        if self
            .invalid_spi_told
            .get(&from)
            .is_some_and(|t| now.duration_since(*t) < INVALID_SPI_EVERY)
        {
            return;
        }
        let found = {
            let t = self.tables.lock();
            t.ike
                .iter()
                .filter(|(_, e)| e.state == IkeState::Established && e.remote.ip() == from)
                .max_by_key(|(_, e)| e.since)
                .map(|(h, e)| (*h, Arc::clone(&e.gateway)))
        };
        let Some((h, gateway)) = found else {
            return;
        };
        if self.invalid_spi_told.len() >= 4096 {
            self.invalid_spi_told
                .retain(|_, t| now.duration_since(*t) < INVALID_SPI_EVERY);
        }
        self.invalid_spi_told.insert(from, now);
        if self.endpoint.report_invalid_spi(now, h, spi).is_ok() {
            self.log.record(
                Severity::Info,
                &format!("ike-gateway {gateway}"),
                format!(
                    "ESP/AH from {from} with SPI 0x{:08x}, which matches no SA of ours: told \
                     the peer (INVALID_SPI)",
                    spi.0
                ),
            );
        }
    }

    pub(super) fn fail_waiters(&mut self, gateway: &str, why: &str) {
        let Some(gw) = self.gateway_index(gateway) else {
            return;
        };
        let (fail, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| match &w.goal {
                Goal::IkeUp { gateway } | Goal::TunnelUp { gateway, .. } => *gateway == gw,
            });
        self.waiters = keep;
        for w in fail {
            let _ = w.reply.send(Err(why.to_owned()));
        }
    }
}
