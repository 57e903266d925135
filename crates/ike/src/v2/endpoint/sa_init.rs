//! IKE_SA_INIT (RFC 7296 §1.2): both roles, proposal selection, INVALID_KE_PAYLOAD, COOKIE, NAT detection.

use super::*;

impl Core {
    pub(super) fn init_request(&self, sa: &IkeSa) -> Result<Vec<u8>, ferrosec_wire::Error> {
        let State::InitSent(st) = &sa.state else {
            return Err(ferrosec_wire::Error::Malformed("not in IKE_SA_INIT"));
        };
        let cfg = &self.peers[&sa.peer];
        let mut payloads = Vec::new();
        if let Some(c) = &st.cookie {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.6
            //# the initiator MUST retry the IKE_SA_INIT request, and include the
            //# Notify payload of type COOKIE containing the responder-supplied cookie
            //# data as the first payload
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::COOKIE,
                c,
            ))));
        }
        payloads.push(Payload::new(PayloadBody::Sa(proposals_to_wire(
            &cfg.ike_proposals,
        ))));
        payloads.push(Payload::new(PayloadBody::Ke(KeyExchange {
            group: DhGroup(st.kex.group()),
            data: st.kex.public_key(),
        })));
        payloads.push(Payload::new(PayloadBody::Nonce(&st.ni)));
        let src = nat_hash(sa.spi_i, IkeSpi(0), sa.local);
        let dst = nat_hash(sa.spi_i, IkeSpi(0), sa.remote);
        if cfg.nat_traversal {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                &src,
            ))));
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                &dst,
            ))));
        }
        //= https://www.rfc-editor.org/rfc/rfc7383#section-2.3
        //# The initiator indicates its support for IKE fragmentation and willingness to use
        //# it by including a Notify payload of type IKEV2_FRAGMENTATION_SUPPORTED in the
        //# IKE_SA_INIT request message.
        if cfg.fragmentation {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                &[],
            ))));
        }
        //= https://www.rfc-editor.org/rfc/rfc9370#section-2.2.1
        //# the initiator MUST also include the INTERMEDIATE_EXCHANGE_SUPPORTED notification
        if offers_addke(&cfg.ike_proposals) {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED,
                &[],
            ))));
        }
        //= https://www.rfc-editor.org/rfc/rfc7427#section-4
        //# the initiator ... includes the SIGNATURE_HASH_ALGORITHMS notification in the
        //# IKE_SA_INIT request
        let hashes = certauth::hash_notify();
        if self.certs.contains_key(&sa.peer) {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                &hashes,
            ))));
        }
        Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, MessageId(0), false),
            payloads,
        }
        .to_vec()
    }

    pub(super) fn handle_init_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Keep {
        let Ok(msg) = Message::parse(data) else {
            return Keep::Yes;
        };
        let name = self.peers[&sa.peer].name.clone();
        let State::InitSent(st) = &mut sa.state else {
            return Keep::Yes;
        };
        // COOKIE: send the request again with it (same SPI, nonce, KE).
        if let Some(c) = find_notify(&msg.payloads, NotifyType::COOKIE) {
            if c.data.is_empty() || c.data.len() > MAX_COOKIE_LEN || st.rounds >= MAX_INIT_ROUNDS {
                return Keep::Yes;
            }
            st.cookie = Some(c.data.to_vec());
            st.rounds += 1;
            return self.restart_init(now, sa);
        }
        if let Some(n) = find_notify(&msg.payloads, NotifyType::INVALID_KE_PAYLOAD) {
            let wanted = n
                .data
                .get(..2)
                .map(|b| DhGroup(u16::from_be_bytes([b[0], b[1]])));
            let ours = self.peers[&sa.peer].ike_proposals.iter().any(|p| {
                p.of_type(TransformType::KE)
                    .any(|t| Some(DhGroup(t.id)) == wanted)
            });
            match wanted {
                Some(g) if ours && g.0 != st.kex.group() && st.rounds < MAX_INIT_ROUNDS => {
                    let Ok(kex) = self
                        .provider
                        .key_exchange(g.0)
                        .and_then(|k| k.start(&mut *self.rng))
                    else {
                        return Keep::Yes;
                    };
                    st.kex = kex;
                    st.rounds += 1;
                    // §1.2: the retry is a new exchange: a new nonce is fine, keep ours.
                    return self.restart_init(now, sa);
                }
                _ => {
                    st.refused.get_or_insert(NotifyType::INVALID_KE_PAYLOAD);
                    return Keep::Yes;
                }
            }
        }
        // RFC 7296 §2.21.1: an error notify answering IKE_SA_INIT is unauthenticated and may
        // be forged by anyone on the path; the initiator should keep waiting for a genuine
        // answer for a while. We keep the first error and wait for a genuine answer until our next
        // retransmission (see `sa_timeout`), then fail with that error. strongSwan gives up
        // at once; a forged NO_PROPOSAL_CHOSEN then kills the negotiation.
        if let Some(err) = first_error_notify(&msg.payloads) {
            st.refused.get_or_insert(err);
            return Keep::Yes;
        }
        if header.responder_spi.0 == 0 {
            return Keep::Yes;
        }
        let Found {
            sa: sa_p,
            ke,
            nonce,
            ..
        } = Found::of(&msg.payloads);
        let (Some(sa_p), Some(ke), Some(nonce)) = (sa_p, ke, nonce) else {
            return Keep::Yes;
        };
        if !(16..=256).contains(&nonce.len()) || sa_p.proposals.len() != 1 {
            return Keep::Yes;
        }
        let cfg = &self.peers[&sa.peer];
        let answer = Proposal::from_wire(&sa_p.proposals[0]);
        let selected = match proposal::check_answer(
            &cfg.ike_proposals,
            sa_p.proposals[0].number,
            &answer,
            SelectOptions::default(),
        ) {
            Ok(s) => s,
            Err(e) => {
                self.failed_in(
                    ExchangeType::IKE_SA_INIT,
                    Some(sa),
                    name,
                    false,
                    Failure::BadAnswer(e),
                );
                return Keep::No;
            }
        };
        if selected.ke.map(|g| g.0) != Some(st.kex.group()) || ke.group.0 != st.kex.group() {
            self.failed_in(
                ExchangeType::IKE_SA_INIT,
                Some(sa),
                name,
                false,
                Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_SA_INIT.into(),
                    response: true,
                    what: Malformed::KeGroup,
                },
            );
            return Keep::No;
        }
        //= https://www.rfc-editor.org/rfc/rfc9242#section-3
        //# the IKE_INTERMEDIATE exchange MUST NOT be used unless both peers have indicated
        //# support for it
        if selected.additional().next().is_some()
            && find_notify(&msg.payloads, NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED).is_none()
        {
            self.failed_in(
                ExchangeType::IKE_SA_INIT,
                Some(sa),
                name,
                false,
                Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_SA_INIT.into(),
                    response: true,
                    what: Malformed::Missing("INTERMEDIATE_EXCHANGE_SUPPORTED"),
                },
            );
            return Keep::No;
        }
        let g_ir = match st.kex.complete(ke.data) {
            Ok(s) => s,
            Err(why) => {
                let f = peer_kex(st.kex.group(), why);
                self.failed_in(ExchangeType::IKE_SA_INIT, Some(sa), name, false, f);
                return Keep::No;
            }
        };
        let spi_r = header.responder_spi;
        let keys = match IkeKeys::derive(
            &self.provider,
            &selected,
            &g_ir,
            &st.ni,
            nonce,
            sa.spi_i,
            spi_r,
            true,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.failed_in(
                    ExchangeType::IKE_SA_INIT,
                    Some(sa),
                    name,
                    false,
                    derivation("IKE SA", e),
                );
                return Keep::No;
            }
        };
        let nonce_min = min_nonce(&st.ni, nonce);
        if !sa.requests.handle_response(MessageId(0)) {
            return Keep::Yes;
        }
        sa.nonce = nonce_min;
        let nat_t = cfg.nat_traversal;
        sa.fragmentation = cfg.fragmentation
            && find_notify(&msg.payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        sa.spi_r = spi_r;
        sa.keys = Some(keys);
        sa.proposal = Some(selected);
        if nat_t && let Some(nat) = nat_detect(&msg.payloads, sa.spi_i, spi_r, local, remote) {
            sa.nat = nat;
            if nat.0 || nat.1 {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-2.23
                //# the initiator MUST switch to using UDP port 4500 for the IKE_AUTH
                sa.local = SocketAddr::new(sa.local.ip(), NATT_PORT);
                sa.remote = SocketAddr::new(sa.remote.ip(), NATT_PORT);
            }
        }
        let State::InitSent(st) = std::mem::replace(&mut sa.state, State::Established) else {
            return Keep::No;
        };
        let transcript = InitTranscript {
            msg1: st.sent,
            msg2: data.to_vec(),
            ni: st.ni,
            nr: nonce.to_vec(),
            peer_hashes: find_notify(&msg.payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS)
                .map(|n| certauth::parse_hashes(n.data)),
            peer_fetches: find_notify(&msg.payloads, NotifyType::HTTP_CERT_LOOKUP_SUPPORTED)
                .is_some(),
            inter: Default::default(),
        };
        self.after_init(now, sa, transcript)
    }

    pub(super) fn restart_init(&mut self, now: Instant, sa: &mut IkeSa) -> Keep {
        match self.init_request(sa) {
            Ok(m) => {
                if let State::InitSent(st) = &mut sa.state {
                    st.sent = m.clone();
                }
                sa.requests.restart(now, vec![m.clone()]);
                self.send(sa.local, sa.remote, &m);
                Keep::Yes
            }
            Err(_) => Keep::No,
        }
    }

    // -----------------------------------------------------------------------------------
    // IKE_AUTH
}

impl Endpoint {
    pub(super) fn handle_init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) {
        // A retransmission of a request we answered: the same answer again.
        if let Some(ours) = self.init_index.get(&(header.initiator_spi, remote)) {
            if let Some(sa) = self.sas.get(ours)
                && let RequestClass::Retransmit(d) = sa.responses.classify(MessageId(0))
            {
                let d = d.to_vec();
                let (l, r) = (sa.local, sa.remote);
                for m in d {
                    self.send(l, r, &m);
                }
            }
            return;
        }
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        let Found {
            sa: sa_p,
            ke,
            nonce,
            ..
        } = Found::of(&msg.payloads);
        let (Some(sa_p), Some(ke), Some(nonce)) = (sa_p, ke, nonce) else {
            self.reject_init(local, remote, header, Rejection::Malformed);
            return;
        };
        if !(16..=256).contains(&nonce.len()) {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-3.9
            //# The size of the Nonce Data MUST be between 16 and 256 octets, inclusive.
            self.reject_init(local, remote, header, Rejection::Malformed);
            return;
        }
        if unsupported_critical(&msg.payloads) {
            self.reject_init(local, remote, header, Rejection::UnsupportedCritical);
            return;
        }
        let Some(peer) = self.peer_for(remote) else {
            if let Some(v1) = self.v1_only_peer_for(remote) {
                // As strongSwan answers when it has no IKEv2 configuration for the peer: an
                // `ikev2-preferred` peer falls back to IKEv1 on it.
                self.reject_init(local, remote, header, Rejection::NoProposal);
                let name = self.peers[&v1].name.clone();
                self.failed_in(
                    ExchangeType::IKE_SA_INIT,
                    None,
                    name,
                    false,
                    Failure::Ikev2NotServed(remote),
                );
                return;
            }
            self.failed_in(
                ExchangeType::IKE_SA_INIT,
                None,
                remote.to_string(),
                false,
                Failure::NoPeerConfig(remote),
            );
            return;
        };
        // Cookies: decided before any state or DH work (§2.6).
        let cookie = find_notify(&msg.payloads, NotifyType::COOKIE)
            .map(|n| n.data)
            .filter(|c| !c.is_empty() && c.len() <= MAX_COOKIE_LEN);
        let input = CookieInput {
            nonce,
            addr: remote.ip(),
            spi_i: header.initiator_spi,
        };
        let ip = remote.ip();
        if cookie.is_none() {
            self.guard.new_negotiation(now, ip);
        }
        let half_open = self.half_open_count();
        let pressure = self.cookies.required_by_load(half_open);
        // The per-address limit holds under pressure only: below the cookie threshold many
        // gateways behind one address (or a load generator) may start at once.
        let address_full = pressure && {
            let n = self.sas.half_open_from(ip);
            self.guard.address_full(n)
        };
        if address_full && cookie.is_some() {
            // Refused before the cookie is even checked: no hashing for a blocked address.
            self.guard.refused(now, ip, Refusal::PerAddress);
            self.guard.wasted(now, ip);
            return;
        }
        match self
            .cookies
            .decide(half_open, &input, cookie, self.peers[&peer].strict_cookies)
        {
            CookieDecision::Proceed => {}
            CookieDecision::SendCookie(c) => {
                // Stateless, so also at the global limit: a genuine initiator always has a
                // way in (never silence).
                self.guard.cookie_sent(now);
                self.send_init_notify(local, remote, header, NotifyType::COOKIE, &c);
                return;
            }
        }
        if address_full {
            self.guard.refused(now, ip, Refusal::PerAddress);
            self.guard.wasted(now, ip);
            return;
        }
        // A genuine initiator waits for its answer: two half-open SAs already is a flood.
        if self.sas.half_open_from(ip) >= 2 {
            self.guard.wasted(now, ip);
        }
        let suspect = self.guard.suspect(now, ip);
        // At the global limit a request with a valid cookie replaces the oldest half-open SA,
        // if that one has had time to complete; decided here, done once the request is known
        // to be acceptable.
        let evict = if half_open >= self.cookies.config().max_half_open {
            let before = now
                .checked_sub(self.config.half_open.evict_after)
                .filter(|_| !suspect);
            match before.and_then(|b| self.sas.oldest_half_open(b)) {
                Some(spi) => Some(spi),
                None => {
                    self.guard.refused(now, ip, Refusal::Global);
                    return;
                }
            }
        } else {
            None
        };
        let cfg = &self.peers[&peer];
        let name = cfg.name.clone();
        // RFC 9242 §3: no IKE_INTERMEDIATE unless the initiator announced it, so without the
        // notify its ADDKE transforms cannot be chosen.
        let intermediate =
            find_notify(&msg.payloads, NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED).is_some();
        let mut offered = offered_proposals(sa_p);
        if !intermediate {
            for (_, p) in &mut offered {
                p.transforms
                    .retain(|t| proposal::addke_slot(t.ty).is_none());
            }
        }
        let selected =
            match proposal::select(&offered, &cfg.ike_proposals, SelectOptions::default()) {
                Ok(s) => s,
                Err(e) => {
                    self.reject_init(local, remote, header, Rejection::NoProposal);
                    self.failed_in(
                        ExchangeType::IKE_SA_INIT,
                        None,
                        name,
                        false,
                        Failure::NoProposalChosen(e),
                    );
                    return;
                }
            };
        let Some(group) = selected.ke else {
            return;
        };
        if ke.group != group {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-1.2
            //# If the guess turns out to be wrong, the responder will indicate the group it
            //# wants with an INVALID_KE_PAYLOAD notification
            self.reject_init(local, remote, header, Rejection::WrongGroup(group));
            return;
        }
        if pressure && !self.guard.take_dh(now, group.0, suspect) {
            self.guard.refused(now, ip, Refusal::DhRate);
            return;
        }
        if let Some(spi) = evict
            && let Some(mut old) = self.sas.remove(&spi)
        {
            self.forget(now, &mut old);
            self.guard.evicted(now);
            self.guard.wasted(now, old.remote.ip());
        }
        let kx = match self
            .provider
            .key_exchange(group.0)
            .and_then(|k| k.respond(&mut *self.rng, ke.data))
        {
            Ok(kx) => kx,
            Err(_) => {
                self.reject_init(local, remote, header, Rejection::Malformed);
                return;
            }
        };
        let spi_i = header.initiator_spi;
        let spi_r = self.unused_ike_spi();
        let nr = self.random_bytes(NONCE_LEN);
        let keys = match IkeKeys::derive(
            &self.provider,
            &selected,
            &kx.shared,
            nonce,
            &nr,
            spi_i,
            spi_r,
            false,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.reject_init(local, remote, header, Rejection::NoProposal);
                self.failed_in(
                    ExchangeType::IKE_SA_INIT,
                    None,
                    name,
                    false,
                    derivation("IKE SA", e),
                );
                return;
            }
        };
        let nat_t = self.peers[&peer].nat_traversal;
        let nat = if nat_t {
            nat_detect(&msg.payloads, spi_i, IkeSpi(0), local, remote).unwrap_or((false, false))
        } else {
            (false, false)
        };
        // The response.
        let answer = selected.to_proposal(Vec::new());
        let src = nat_hash(spi_i, spi_r, local);
        let dst = nat_hash(spi_i, spi_r, remote);
        let mut payloads = vec![
            Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![answer.to_wire(selected.number)],
            })),
            Payload::new(PayloadBody::Ke(KeyExchange {
                group,
                data: &kx.public,
            })),
            Payload::new(PayloadBody::Nonce(&nr)),
        ];
        let peer_sent_nat_d =
            find_notify(&msg.payloads, NotifyType::NAT_DETECTION_SOURCE_IP).is_some();
        if nat_t && peer_sent_nat_d {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                &src,
            ))));
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                &dst,
            ))));
        }
        //= https://www.rfc-editor.org/rfc/rfc7383#section-2.3
        //# If the responder supports IKE fragmentation and is willing to use it, it includes
        //# the IKEV2_FRAGMENTATION_SUPPORTED notification in its response.
        let fragmentation = self.peers[&peer].fragmentation
            && find_notify(&msg.payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        if fragmentation {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                &[],
            ))));
        }
        if intermediate && selected.additional().next().is_some() {
            payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED,
                &[],
            ))));
        }
        let peer_hashes = find_notify(&msg.payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS)
            .map(|n| certauth::parse_hashes(n.data));
        let hashes = certauth::hash_notify();
        let certreq = self.certs.get(&peer).map(|c| c.certreq());
        if let Some(req) = &certreq {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-3.7
            //# The Certificate Request payload is processed by inspecting the "Cert
            //# Encoding" field to determine whether the processor has any certificates of
            //# this type.
            // Ours names our trust anchors by the SHA-1 of their public keys.
            if !req.is_empty() {
                payloads.push(Payload::new(PayloadBody::CertReq(
                    ferrosec_wire::ikev2::Certificate {
                        encoding: CertEncoding::X509_SIGNATURE,
                        data: req,
                    },
                )));
            }
            if peer_hashes.is_some() {
                payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                    NotifyType::SIGNATURE_HASH_ALGORITHMS,
                    &hashes,
                ))));
            }
            if self.certs.get(&peer).is_some_and(|c| c.fetch_hash_and_url) {
                payloads.push(Payload::new(PayloadBody::Notify(Notify::new(
                    NotifyType::HTTP_CERT_LOOKUP_SUPPORTED,
                    &[],
                ))));
            }
        }
        let resp = Message {
            header: Header {
                initiator_spi: spi_i,
                responder_spi: spi_r,
                version: Version::IKEV2,
                exchange_type: ExchangeType::IKE_SA_INIT,
                flags: Flags::new(false, true),
                message_id: MessageId(0),
            },
            payloads,
        };
        let Ok(resp) = resp.to_vec() else {
            return;
        };
        let mut responses = Responses::new(MessageId(0));
        responses.record(MessageId(0), vec![resp.clone()]);
        let sa_nonce = min_nonce(nonce, &nr);
        let sa = IkeSa {
            peer,
            initiator: false,
            spi_i,
            spi_r,
            local,
            remote,
            state: State::HalfOpen {
                transcript: Box::new(InitTranscript {
                    msg1: data.to_vec(),
                    msg2: resp.clone(),
                    ni: nonce.to_vec(),
                    nr,
                    peer_hashes,
                    peer_fetches: false,
                    inter: Default::default(),
                }),
                // Under pressure a half-open SA gets seconds, not the usual half a minute.
                expires: now
                    + if pressure {
                        self.config
                            .half_open
                            .pressure_timeout
                            .min(self.config.half_open_timeout)
                    } else {
                        self.config.half_open_timeout
                    },
            },
            requests: Requests::new(MessageId(0)),
            responses,
            liveness: Liveness::new(self.peers[&peer].liveness, now),
            pending: None,
            queue: VecDeque::new(),
            keys: Some(keys),
            proposal: Some(selected),
            nat,
            children: Vec::new(),
            life: Life::Normal,
            peer_id: None,
            auth: AuthInfo::default(),
            announced: false,
            nonce: sa_nonce,
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
            fragmentation,
            frags: Default::default(),
            fetching: None,
            cp: None,
            followup: None,
        };
        self.send(local, remote, &resp);
        self.init_index.insert((spi_i, remote), spi_r);
        self.init_rev.insert(spi_r, (spi_i, remote));
        self.sas.insert(spi_r, sa);
    }
}
