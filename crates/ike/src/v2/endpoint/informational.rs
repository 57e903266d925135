//! INFORMATIONAL exchanges (RFC 7296 §1.4): deletes of IKE and Child SAs, liveness checks, error notifies.

use super::*;

impl Endpoint {
    pub(super) fn handle_informational(
        &mut self,
        now: Instant,
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
                let new = IkeSpi(c.created);
                self.move_to(now, sa, new);
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
}
