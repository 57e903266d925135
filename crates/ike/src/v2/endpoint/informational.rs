//! INFORMATIONAL exchanges (RFC 7296 §1.4): deletes of IKE and Child SAs, liveness checks, error notifies.

use super::*;

impl Core {
    pub(super) fn handle_informational(
        &mut self,

        sa: &mut IkeSa,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        let name = self.peers[&sa.peer].name.clone();
        let mut delete_ike = false;
        let mut ours: Vec<(ProtocolId, Spi)> = Vec::new();
        for p in inner {
            if let PayloadBody::Delete(d) = &p.body {
                if d.protocol == ProtocolId::IKE {
                    delete_ike = true;
                } else {
                    for spi in d.child_spis() {
                        // The peer names its inbound SPI = our outbound.
                        let Some(pos) = sa
                            .children
                            .iter()
                            .position(|c| c.outbound == spi && c.protocol == d.protocol)
                        else {
                            if let Some(Pending::Child(r)) = &mut sa.pending
                                && r.deleted_early.len() < 8
                            {
                                r.deleted_early.push(spi);
                            }
                            continue;
                        };
                        // The rekey initiator's DELETE of the old pair: the new one is installed
                        // there (R-V2-10), and traffic moves before the old one goes.
                        let inbound = sa.children[pos].inbound;
                        self.flush_switch(sa, inbound);
                        if let Some(Pending::Child(r)) = &sa.pending
                            && r.rekey == Some(inbound)
                            && let Some(col) = &r.collision
                        {
                            // §2.8.1: the peer's rekey of it crossed ours and the peer
                            // deletes it, so the peer completed its exchange and installed
                            // the pair it made: traffic moves there now, not when our own
                            // (redundant) answer comes.
                            let to = Spi(col.created as u32);
                            self.child_rekeyed(sa, inbound, to);
                        }
                        let c = sa.remove_child(pos);
                        //= https://www.rfc-editor.org/rfc/rfc7296#section-1.4.1
                        //# If a node receives a delete request for SAs for which it has
                        //# already issued a delete request, it MUST delete the outgoing SAs
                        //# while processing the request and the incoming SAs while
                        //# processing the response.  In that case, the responses MUST NOT
                        //# include Delete payloads for the deleted SAs
                        if c.state != ChildState::Deleting {
                            ours.push((c.protocol, c.inbound));
                        }
                        self.event(Event::ChildSaDown {
                            ike_sa: IkeSaHandle(sa.our_spi()),
                            inbound_spi: c.inbound,
                            outbound_spi: c.outbound,
                            reason: DownReason::PeerDelete,
                        });
                    }
                }
            }
        }
        if !delete_ike {
            self.invalid_spis(sa, inner);
        }
        if !delete_ike
            && ours.is_empty()
            && find_notify(inner, NotifyType::AUTHENTICATION_FAILED).is_some()
        {
            // §2.21.2: the initiator could not verify our AUTH and says so in its own
            // INFORMATIONAL: the IKE SA is dead.
            self.respond(sa, header, &[]);
            self.failed_in(
                ExchangeType::INFORMATIONAL,
                Some(sa),
                name,
                false,
                Failure::PeerRefused {
                    notify: NotifyType::AUTHENTICATION_FAILED,
                },
            );
            self.ike_down(sa, DownReason::PeerDelete);
            return Keep::No;
        }
        if delete_ike {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-1.4.1
            //# the responder ... MUST send an empty INFORMATIONAL response
            self.respond(sa, header, &[]);
            if matches!(sa.life, Life::Rekeyed(_)) {
                // The rekey initiator deletes the old IKE SA; its children live on.
                return Keep::No;
            }
            if let Some(Pending::IkeRekey(r)) = &sa.pending
                && let Some(c) = &r.collision
            {
                // §2.8.2: the peer won a rekey collision and deleted the old SA before our
                // response came: the SA it created takes over.
                self.actions.push(Action::MoveTo {
                    old: sa.our_spi(),
                    new: IkeSpi(c.created),
                    then_delete_old: false,
                });
                return Keep::No;
            }
            self.ike_down(sa, DownReason::PeerDelete);
            return Keep::No;
        }
        // Answer child deletes with the SPIs of our halves (§1.4.1), grouped by protocol.
        let mut bufs: Vec<(ProtocolId, Vec<u8>)> = Vec::new();
        for (proto, spi) in ours {
            match bufs.iter_mut().find(|(p, _)| *p == proto) {
                Some((_, b)) => b.extend_from_slice(&spi.0.to_be_bytes()),
                None => bufs.push((proto, spi.0.to_be_bytes().to_vec())),
            }
        }
        let out: Vec<Payload<'_>> = bufs
            .iter()
            .map(|(proto, spis)| {
                Payload::new(PayloadBody::Delete(Delete {
                    protocol: *proto,
                    spi_size: 4,
                    spis,
                }))
            })
            .collect();
        self.respond(sa, header, &out);
        Keep::Yes
    }

    /// Protected INVALID_SPI notifies: the peer has no SA for one of our outbound SPIs (it
    /// got ESP or AH with it), so the pair is useless; we delete it, and traffic or policy
    /// brings up a new one.
    //= https://www.rfc-editor.org/rfc/rfc7296#section-3.10.1
    //# INVALID_SPI                              11
    //#     Indicates an ESP or AH packet was received with an invalid SPI. The
    //#     Notification Data contains the SPI of the invalid packet.
    fn invalid_spis(&mut self, sa: &mut IkeSa, inner: &[Payload<'_>]) {
        for p in inner {
            let PayloadBody::Notify(n) = &p.body else {
                continue;
            };
            if n.ty != NotifyType::INVALID_SPI {
                continue;
            }
            // The SPI is the notification data; some put it in the SPI field instead.
            let raw = if n.data.len() == 4 { n.data } else { n.spi };
            let Ok(b) = <[u8; 4]>::try_from(raw) else {
                continue;
            };
            let spi = Spi(u32::from_be_bytes(b));
            let Some(inbound) = sa
                .children
                .iter()
                .find(|c| c.outbound == spi && c.state == ChildState::Installed)
                .map(|c| c.inbound)
            else {
                continue;
            };
            if sa.pending_delete_of(inbound) || !sa.push_work(Work::DeleteChild(inbound)) {
                continue;
            }
            self.hint(sa, Hint::InvalidSpi { spi });
        }
    }
}

impl Core {}

impl Endpoint {
    /// Tells the peer of IKE SA `h` that ESP or AH with SPI `spi` came from it and matches no
    /// SA of ours (RFC 7296 §2.21.4, §3.10.1 INVALID_SPI; RFC 4303 §3.4.2): a protected
    /// INFORMATIONAL request, so the peer can delete the pair it still uses. Best effort:
    /// [`CommandError::Busy`] while the SA has a request in flight (the caller rate-limits;
    /// the next packet with that SPI tries again). Its answer counts as a liveness reply.
    pub fn report_invalid_spi(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        spi: Spi,
    ) -> Result<(), CommandError> {
        self.send_notify_request(now, h, NotifyType::INVALID_SPI, &spi.0.to_be_bytes())
    }

    /// Sends an INFORMATIONAL request carrying one notify on an established SA; its answer
    /// is taken like that of a liveness check.
    pub(crate) fn send_notify_request(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        ty: NotifyType,
        data: &[u8],
    ) -> Result<(), CommandError> {
        let h = self.resolve(h);
        let sa = self.sas.get_mut(&h.0).ok_or(CommandError::NoSuchSa)?;
        let core = &mut self.core;
        if !sa.established() || sa.requests.busy() {
            return Err(CommandError::Busy);
        }
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::INFORMATIONAL, id, false);
        let inner = [Payload::new(PayloadBody::Notify(Notify::new(ty, data)))];
        let msgs = sa
            .protect(&mut *core.rng, &core.config, header, &inner)
            .map_err(|_| CommandError::Busy)?;
        for m in &msgs {
            core.send(sa.local, sa.remote, m);
        }
        sa.requests.start(now, msgs, core.config.retransmit);
        sa.pending = Some(Pending::Work(Work::Liveness));
        Ok(())
    }
}
