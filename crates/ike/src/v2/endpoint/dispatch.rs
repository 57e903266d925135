//! The entry point for datagrams: split by header into IKE_SA_INIT requests, requests and responses of known IKE SAs, and unprotected errors.

use super::protected::{Opened, fragment_number};
use super::*;

impl Core {
    /// Reports a hint of the peer about an SA.
    pub(super) fn hint(&mut self, sa: &IkeSa, hint: Hint) {
        let peer = self
            .peers
            .get(&sa.peer)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        self.event(Event::PeerHint {
            handle: IkeSaHandle(sa.our_spi()),
            peer,
            hint,
        });
    }

    /// An unprotected INVALID_SPI or INVALID_IKE_SPI notify in a request with our IKE SPIs:
    /// anyone on the path can send it, so it only starts a liveness check, and only when no
    /// request is in flight (that request is a check already), at most
    /// [`MAX_HINT_CHECKS_PER_SEC`] a second over all SAs.
    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.4
    //# An implementation SHOULD limit the frequency of such tests to avoid being tricked
    //# into participating in a DoS attack.
    pub(super) fn unprotected_hint(&mut self, now: Instant, sa: &mut IkeSa, notify: NotifyType) {
        if !sa.usable()
            || sa.requests.busy()
            || !per_second(&mut self.hint_checks, now, MAX_HINT_CHECKS_PER_SEC)
        {
            return;
        }
        if self.start_informational(now, sa, Work::Liveness).is_ok() {
            self.hint(sa, Hint::Unprotected { notify });
        }
    }

    pub(super) fn peer_for(&self, remote: SocketAddr) -> Option<PeerId> {
        let first = |f: &dyn Fn(&PeerConfig) -> bool| {
            self.peers
                .iter()
                .find(|(id, p)| !self.v1_only.contains(id) && f(p))
                .map(|(id, _)| *id)
        };
        first(&|p| p.peer_addr == Some(remote.ip())).or_else(|| first(&|p| p.peer_addr.is_none()))
    }

    /// The IKEv1-only peer configuration for `remote`, if one exists: an IKEv2 request from
    /// it is refused, and the log says why.
    pub(super) fn v1_only_peer_for(&self, remote: SocketAddr) -> Option<PeerId> {
        let first = |f: &dyn Fn(&PeerConfig) -> bool| {
            self.v1_only
                .iter()
                .find(|id| self.peers.get(id).is_some_and(|p| f(p)))
                .copied()
        };
        first(&|p| p.peer_addr == Some(remote.ip())).or_else(|| first(&|p| p.peer_addr.is_none()))
    }

    /// An unprotected response carrying one error notify, for a request outside any IKE SA
    /// we know (INVALID_IKE_SPI, INVALID_MAJOR_VERSION), rate-limited so that it cannot be
    /// used for reflection.
    pub(super) fn send_unprotected_error(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        req: &Header,
        r: Rejection,
    ) {
        if !per_second(&mut self.error_notifies, now, MAX_ERROR_NOTIFIES_PER_SEC) {
            return;
        }
        let (ty, data) = r.notify();
        let data = &data[..];
        // We answer as the responder of the exchange the peer started.
        let msg = Message {
            header: Header {
                version: Version::IKEV2,
                flags: Flags::new(!req.flags.initiator(), true),
                ..*req
            },
            payloads: vec![Payload::new(PayloadBody::Notify(Notify::new(ty, data)))],
        };
        if let Ok(bytes) = msg.to_vec() {
            self.send(local, remote, &bytes);
        }
    }

    /// An unencrypted IKE_SA_INIT response that carries only a notify.
    /// Refuses an IKE_SA_INIT request (unprotected, §2.21.1).
    pub(super) fn reject_init(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        req: &Header,
        r: Rejection,
    ) {
        let (ty, data) = r.notify();
        self.send_init_notify(local, remote, req, ty, &data);
    }

    pub(super) fn send_init_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        req: &Header,
        ty: NotifyType,
        data: &[u8],
    ) {
        let msg = Message {
            header: Header {
                responder_spi: IkeSpi(0),
                flags: Flags::new(false, true),
                ..*req
            },
            payloads: vec![Payload::new(PayloadBody::Notify(Notify::new(ty, data)))],
        };
        if let Ok(bytes) = msg.to_vec() {
            self.send(local, remote, &bytes);
        }
    }

    // -----------------------------------------------------------------------------------
    // IKE_SA_INIT

    /// Sends a protected response and caches it for retransmitted requests.
    pub(super) fn respond(&mut self, sa: &mut IkeSa, req: &Header, inner: &[Payload<'_>]) {
        let header = sa.header(req.exchange_type, req.message_id, true);
        let Ok(msgs) = sa.protect(&mut *self.rng, &self.config, header, inner) else {
            return;
        };
        for m in &msgs {
            self.send(sa.local, sa.remote, m);
        }
        sa.responses.record(req.message_id, msgs);
    }

    pub(super) fn handle_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Keep {
        if header.exchange_type == ExchangeType::INFORMATIONAL
            && let Some(ty) = unprotected_notify(
                data,
                &[NotifyType::INVALID_SPI, NotifyType::INVALID_IKE_SPI],
            )
        {
            self.unprotected_hint(now, sa, ty);
            return Keep::Yes;
        }
        let Ok(msg) = Message::parse(data) else {
            return Keep::Yes;
        };
        match sa.responses.classify(header.message_id) {
            RequestClass::Drop => return Keep::Yes,
            RequestClass::Retransmit(d) => {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.1
                //# the responder MUST retransmit the response
                //= https://www.rfc-editor.org/rfc/rfc7383#section-2.6.1
                //# MUST only trigger a retransmission of the response message (fragmented
                //# or not) if the Fragment Number field in the received fragments is set to
                //# 1; otherwise, it MUST be ignored.
                if fragment_number(&msg).is_none_or(|n| n == 1) {
                    let d = d.to_vec();
                    for m in d {
                        self.send(sa.local, sa.remote, &m);
                    }
                }
                return Keep::Yes;
            }
            RequestClass::New => {}
        }
        if sa.fetching.as_ref().is_some_and(|f| f.is(header)) {
            // Still fetching the peer's certificate for this request: it is answered then.
            return Keep::Yes;
        }
        // An ICV failure is a silent drop (§3.14 "MUST be discarded").
        let (first, plain) = match sa.unprotect(header, data, &msg) {
            Opened::Whole(first, plain) => (first, plain),
            Opened::Partial | Opened::Dropped => return Keep::Yes,
        };
        let Ok(inner) = parse_payloads(first, &plain) else {
            return Keep::Yes;
        };
        if self.fetch_first(now, sa, local, remote, header, first, &plain, &inner) {
            return Keep::Yes;
        }
        let keep = if header.exchange_type == ExchangeType::IKE_INTERMEDIATE {
            self.handle_intermediate_request(now, sa, header, first, &plain, &inner)
        } else {
            self.handle_authentic_request(now, sa, local, remote, header, &inner)
        };
        // Should the SA go soon, its answer stays for retransmissions of exactly this request.
        if sa
            .responses
            .last()
            .is_some_and(|(id, _)| id == header.message_id)
        {
            sa.responses
                .note_request(header.message_id, tombstone::request_digest(data), now);
        }
        keep
    }

    /// A new request that passed the integrity check.
    pub(super) fn handle_authentic_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        // Authentic: the peer is alive, and its address may have changed (NAT, §2.23).
        sa.liveness.on_receive(now);
        sa.peer_seen = true;
        if local.port() == NATT_PORT {
            sa.local = local;
            sa.remote = remote;
        }
        // A new request proves that the peer processed our earlier answers (§2.3, window
        // size 1): the pairs they made are installed there.
        self.flush_switches(sa, Some(header.message_id), None);
        if unsupported_critical(inner) {
            let (ty, data) = Rejection::UnsupportedCritical.notify();
            self.respond(
                sa,
                header,
                &[Payload::new(PayloadBody::Notify(Notify::new(ty, &data)))],
            );
            return Keep::Yes;
        }
        let deletes_ike = inner
            .iter()
            .any(|p| matches!(&p.body, PayloadBody::Delete(d) if d.protocol == ProtocolId::IKE));
        if !sa.announced && sa.established() && !deletes_ike {
            // A request on the SA the peer made in a crossing IKE SA rekey, before our own
            // rekey is answered: the peer uses it, so it is the survivor (§2.8.2).
            // The endpoint lent us that old SA alongside ([`Lent::crossed`]).
            if let Some((k, mut o)) = self.lent.crossed.take() {
                self.move_into(now, &mut o, sa);
                self.lent.crossed = Some((k, o));
            }
        }
        let half_open = sa.half_open();
        let established = matches!(sa.state, State::Established);
        match header.exchange_type {
            ExchangeType::IKE_AUTH if half_open && !sa.intermediate_owed() => {
                self.handle_auth_request(now, sa, header, inner)
            }
            ExchangeType::INFORMATIONAL if established => {
                self.handle_informational(sa, header, inner)
            }
            ExchangeType::CREATE_CHILD_SA if established => {
                self.handle_create_child_request(now, sa, header, inner)
            }
            ExchangeType::IKE_FOLLOWUP_KE if established => {
                self.handle_followup_request(now, sa, header, inner)
            }
            _ => Keep::Yes,
        }
    }

    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Keep {
        if sa.requests.in_flight() != Some(header.message_id) {
            // §2.3: a response to nothing we wait for.
            return Keep::Yes;
        }
        if sa.peer_seen
            && header.initiator_spi == sa.spi_i
            && header.responder_spi == sa.spi_r
            && unprotected_notify(data, &[NotifyType::INVALID_IKE_SPI]).is_some()
        {
            // §2.21.4: the peer may have lost the IKE SA; a hint, not a proof.
            if sa.requests.hint(now) {
                self.hint(
                    sa,
                    Hint::InvalidIkeSpi {
                        message_id: header.message_id,
                    },
                );
            }
            return Keep::Yes;
        }
        if header.exchange_type == ExchangeType::IKE_SA_INIT {
            if matches!(sa.state, State::InitSent(_)) {
                return self.handle_init_response(now, sa, local, remote, header, data);
            }
            return Keep::Yes;
        }
        if sa.fetching.as_ref().is_some_and(|f| f.is(header)) {
            return Keep::Yes;
        }
        let Ok(msg) = Message::parse(data) else {
            return Keep::Yes;
        };
        let (first, plain) = match sa.unprotect(header, data, &msg) {
            Opened::Whole(first, plain) => (first, plain),
            Opened::Partial | Opened::Dropped => return Keep::Yes,
        };
        let Ok(inner) = parse_payloads(first, &plain) else {
            return Keep::Yes;
        };
        if self.fetch_first(now, sa, local, remote, header, first, &plain, &inner) {
            return Keep::Yes;
        }
        if header.exchange_type == ExchangeType::IKE_INTERMEDIATE {
            return self.handle_intermediate_response(now, sa, header, first, &plain, &inner);
        }
        self.handle_authentic_response(now, sa, header, &inner)
    }

    /// A response to our request in flight that passed the integrity check.
    pub(super) fn handle_authentic_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        if !sa.requests.handle_response(header.message_id) {
            return Keep::Yes;
        }
        sa.liveness.on_receive(now);
        sa.peer_seen = true;
        let auth_sent = matches!(sa.state, State::AuthSent(_));
        let established = matches!(sa.state, State::Established);
        match header.exchange_type {
            ExchangeType::IKE_AUTH if auth_sent => self.handle_auth_response(now, sa, inner),
            ExchangeType::CREATE_CHILD_SA if established => match sa.pending.take() {
                Some(Pending::Child(req)) => {
                    self.handle_create_child_response(now, sa, *req, inner);
                    Keep::Yes
                }
                Some(Pending::IkeRekey(req)) => {
                    self.handle_ike_rekey_response(now, sa, *req, inner);
                    Keep::Yes
                }
                _ => Keep::Yes,
            },
            ExchangeType::IKE_FOLLOWUP_KE if established => match sa.pending.take() {
                Some(Pending::Followup(f)) => {
                    self.handle_followup_response(now, sa, *f, inner);
                    Keep::Yes
                }
                other => {
                    sa.pending = other;
                    Keep::Yes
                }
            },
            ExchangeType::INFORMATIONAL if established => match sa.pending.take() {
                Some(Pending::Work(Work::DeleteIke)) => {
                    self.ike_down(sa, DownReason::LocalDelete);
                    Keep::No
                }
                Some(Pending::Work(Work::DeleteChild(inbound))) => {
                    self.flush_switch(sa, inbound);
                    if let Some(pos) = sa.children.iter().position(|c| c.inbound == inbound) {
                        let c = sa.remove_child(pos);
                        self.event(Event::ChildSaDown {
                            ike_sa: IkeSaHandle(sa.our_spi()),
                            inbound_spi: c.inbound,
                            outbound_spi: c.outbound,
                            reason: DownReason::LocalDelete,
                        });
                    }
                    Keep::Yes
                }
                _ => Keep::Yes,
            },
            _ => Keep::Yes,
        }
    }

    // -----------------------------------------------------------------------------------
    // CREATE_CHILD_SA (§1.3.1 new Child SA, §1.3.3 Child SA rekey, §1.3.2 IKE SA rekey)
}

impl Endpoint {
    /// Handles a UDP datagram that arrived on `local` from `remote` (port 500 or 4500).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        debug_assert!(self.core.actions.is_empty(), "actions left over");
        // What the last call changed is filed now, so the marked SAs stay few.
        self.sas.refresh();
        self.datagram(now, local, remote, data);
        self.run_actions(now);
    }

    fn datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let data = if local.port() == NATT_PORT {
            // RFC 3948 §2: a NAT keepalive is one 0xff byte; IKE has a 4-byte zero marker;
            // anything else is ESP and not ours.
            match data.split_first_chunk::<4>() {
                Some(([0, 0, 0, 0], rest)) => rest,
                _ => return,
            }
        } else {
            data
        };
        let Ok(packet) = Packet::new_checked(data) else {
            return;
        };
        let header = Header::parse(&packet);
        if packet.version().major() != 2 {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.5
            //# If an endpoint receives a message with a higher major version number, it MUST
            //# drop the message and SHOULD send an unauthenticated Notify message of type
            //# INVALID_MAJOR_VERSION containing the highest (closest) version number it
            //# supports.
            if packet.version().major() > 2 && !header.flags.response() {
                self.send_unprotected_error(now, local, remote, &header, Rejection::MajorVersion);
            }
            // Major version 1 (ISAKMP) is the facade's to route (crate::Ike, crate::v1).
            return;
        }
        let from_initiator = header.flags.initiator();
        if header.flags.response() {
            // The responder of the exchange is the peer; our SPI is the one of our role.
            let ours = if from_initiator {
                header.responder_spi
            } else {
                header.initiator_spi
            };
            // The message must come from the peer in the role it claims.
            if self
                .sas
                .get(&ours)
                .is_none_or(|sa| sa.initiator == from_initiator)
            {
                return;
            }
            let Some((sa, core)) = self.lend(ours) else {
                return;
            };
            let keep = core.handle_response(now, sa, local, remote, &header, data);
            self.settle(now, ours, keep);
        } else if header.exchange_type == ExchangeType::IKE_SA_INIT
            && header.responder_spi.0 == 0
            && header.message_id.0 == 0
        {
            if from_initiator {
                self.handle_init_request(now, local, remote, &header, data);
            }
        } else {
            let ours = if from_initiator {
                header.responder_spi
            } else {
                header.initiator_spi
            };
            let Some(sa) = self.sas.get(&ours) else {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.1
                //# The responder MUST never retransmit a response unless it receives a
                //# retransmission of the request.  In that event, the responder MUST ignore
                //# the retransmitted request except insofar as it causes a retransmission
                //# of the cached response.
                // The SA is gone, but if this is the request it answered last, its tombstone
                // has the answer (tombstone.rs).
                match self.tombstones.lookup(now, ours, header.message_id, data) {
                    tombstone::Lookup::Resend {
                        local,
                        remote,
                        datagrams,
                    } => {
                        for d in datagrams {
                            self.send(local, remote, &d);
                        }
                        return;
                    }
                    tombstone::Lookup::Spent => return,
                    tombstone::Lookup::Unknown => {}
                }
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.4
                //# If a response is sent, the response MUST be sent to the IP address and
                //# port from which it came with the same IKE SPIs and the Message ID
                //# copied.  The response MUST NOT be cryptographically protected and MUST
                //# contain an INVALID_IKE_SPI Notify payload.
                self.send_unprotected_error(now, local, remote, &header, Rejection::UnknownIkeSa);
                return;
            };
            if sa.initiator == from_initiator {
                return;
            }
            let Some((sa, core)) = self.lend(ours) else {
                return;
            };
            let keep = core.handle_request(now, sa, local, remote, &header, data);
            self.settle(now, ours, keep);
        }
    }
}
