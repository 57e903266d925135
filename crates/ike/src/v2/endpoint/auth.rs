//! IKE_AUTH (RFC 7296 §1.2, §2.15): shared-key authentication, the first Child SA, the IKE SA established.

use ferrosec_crypto::x509::Certificate;

use super::*;

impl Core {
    pub(super) fn local_id(&self, sa: &IkeSa) -> Identity {
        self.peers[&sa.peer]
            .local_id
            .clone()
            .or_else(|| self.certs.get(&sa.peer).and_then(|c| c.default_id()))
            .unwrap_or_else(|| Identity::addr(sa.local.ip()))
    }

    /// Our AUTH payload (§2.15) over the signed octets `pieces` (`RealMessage | Nonce |
    /// MACedID | IntAuth tail`, the last empty without IKE_INTERMEDIATE, RFC 9242 §3.1): the MAC of the pre-shared key, or, with certificates, a signature with our
    /// key (RFC 7427 when the peer announced its hashes).
    pub(super) fn our_auth(
        &self,
        peer: PeerId,
        keys: &IkeKeys,
        pieces: [&[u8]; 4],
        peer_hashes: Option<&[u16]>,
    ) -> Result<(AuthMethod, Vec<u8>), Failure> {
        match self.certs.get(&peer) {
            None => Ok((
                AuthMethod::SHARED_KEY_MIC,
                psk_auth(keys.prf, &self.peers[&peer].psk, &pieces)
                    .expose()
                    .to_vec(),
            )),
            Some(c) => certauth::sign(&*c.key, peer_hashes, &pieces.concat()),
        }
    }

    /// Our CERT payloads (our certificate, then its intermediates) and CERTREQ, with
    /// certificates; none with a pre-shared key.
    pub(super) fn our_certs(&self, peer: PeerId) -> Option<std::sync::Arc<CertAuth>> {
        self.certs.get(&peer).cloned()
    }

    /// Checks the peer's AUTH over `pieces`: with a pre-shared key its MAC; with certificates
    /// the chain in its CERT payloads to one of our anchors (at the wall-clock time), that the
    /// certificate vouches for the peer's ID, then the signature. Gives the peer's
    /// certificate (none with a pre-shared key).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_peer_auth(
        &self,
        now: Instant,
        peer: PeerId,
        keys: &IkeKeys,
        auth: &Auth<'_>,
        peer_id: &Identity,
        inner: &[Payload<'_>],
        pieces: [&[u8]; 4],
    ) -> Result<Option<Certificate>, Failure> {
        let Some(c) = self.certs.get(&peer) else {
            if auth.method != AuthMethod::SHARED_KEY_MIC {
                return Err(Failure::AuthMethodMismatch {
                    got: auth.method,
                    expected: "a pre-shared key",
                });
            }
            return verify_psk_auth(keys.prf, &self.peers[&peer].psk, &pieces, auth.data)
                .map(|()| None)
                .map_err(|_| Failure::AuthFailed);
        };
        if auth.method == AuthMethod::SHARED_KEY_MIC {
            return Err(Failure::AuthMethodMismatch {
                got: auth.method,
                expected: "certificates",
            });
        }
        //= https://www.rfc-editor.org/rfc/rfc7296#section-3.6
        //# The first certificate provided MUST contain the public key used to verify the
        //# AUTH field.
        let ders: Vec<&[u8]> = inner
            .iter()
            .filter_map(|p| match &p.body {
                PayloadBody::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => Some(c.data),
                _ => None,
            })
            .collect();
        let (ee, intermediates) = certauth::peer_chain(&ders)?;
        let t = self
            .unix_time(now)
            .ok_or(Failure::Local(LocalError::NoWallClock))?;
        let mut crls = c.crls.clone();
        if c.fetch_crls {
            crls.extend(self.crl_cache.crls().cloned());
        }
        certauth::check_chain(c, &ee, &intermediates, &crls, t)?;
        certauth::check_id(peer_id, &ee)?;
        certauth::verify(auth.method, auth.data, &ee, &pieces.concat())?;
        Ok(Some(ee))
    }

    /// How both sides of an IKE SA with `peer` authenticated.
    fn auth_info(
        &self,
        peer: PeerId,
        local: AuthMethod,
        peer_method: AuthMethod,
        cert: Option<&Certificate>,
    ) -> AuthInfo {
        let ours = self.certs.get(&peer).map(|c| &**c);
        certauth::auth_info(ours, local, peer_method, cert)
    }

    /// AUTH for shared keys (§2.15): prf(prf(PSK, "Key Pad for IKEv2"), <SignedOctets>),
    /// SignedOctets = RealMessage | Nonce(peer) | prf(SK_p, ID').
    pub(super) fn signed_octets_mac(keys: &IkeKeys, initiator_side: bool, id: &Identity) -> Secret {
        let sk_p = if initiator_side {
            keys.sk_pi()
        } else {
            keys.sk_pr()
        };
        keys.prf.compute(sk_p, &[&id.payload_body()])
    }

    pub(super) fn send_auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        transcript: InitTranscript,
    ) -> Keep {
        let cfg = &self.peers[&sa.peer];
        let Some(policy) = cfg.policies.first().cloned() else {
            return Keep::No;
        };
        // R-DP-2: AH cannot cross a NAT (its ICV covers the addresses the NAT rewrites), so
        // with one detected only ESP is offered; with nothing left, the IKE SA is given up
        // with that reason rather than refused by the peer in less telling words.
        // The first policy's own proposals (its tunnel's IPSec crypto profile).
        let nat = sa.nat.0 || sa.nat.1;
        let child_props: Vec<Proposal> = strip_ke(&policy.proposals)
            .into_iter()
            .filter(|p| !(nat && p.protocol == ProtocolId::AH))
            .collect();
        if child_props.is_empty() && !policy.proposals.is_empty() {
            let name = cfg.name.clone();
            self.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                name,
                false,
                Failure::AhWithNat,
            );
            return Keep::No;
        }
        let name = cfg.name.clone();
        let id = self.local_id(sa);
        let child_spi = self.new_child_spi();
        let first_contact = !self.lent.peer_has_others;
        let Some(keys) = &sa.keys else {
            return Keep::No;
        };
        let mac = Self::signed_octets_mac(keys, true, &id);
        let (method, auth) = match self.our_auth(
            sa.peer,
            keys,
            [
                &transcript.msg1,
                &transcript.nr,
                mac.expose(),
                &transcript.inter.signed_tail(),
            ],
            transcript.peer_hashes.as_deref(),
        ) {
            Ok(a) => a,
            Err(f) => {
                self.failed_in(ExchangeType::IKE_AUTH, Some(sa), name, false, f);
                return Keep::No;
            }
        };
        let certs = self.our_certs(sa.peer);
        let certreq = certs.as_ref().map(|c| c.certreq()).unwrap_or_default();
        let (tsi, tsr) = policy.ts.initiator_offer();
        let props = with_spi(&child_props, child_spi);
        let tsi_w = tsi.to_wire();
        let tsr_w = tsr.to_wire();
        let mut inner = vec![Payload::new(PayloadBody::IdI(Identification {
            id_type: id.ty,
            data: &id.data,
        }))];
        //= https://www.rfc-editor.org/rfc/rfc7296#section-1.2
        //# HDR, SK {IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, SAi2, TSi, TSr}
        let cert_data = certs
            .as_ref()
            .map(|c| c.cert_payloads(transcript.peer_fetches))
            .unwrap_or_default();
        if certs.is_some() {
            for (encoding, data) in &cert_data {
                inner.push(Payload::new(PayloadBody::Cert(
                    ferrosec_wire::ikev2::Certificate {
                        encoding: *encoding,
                        data,
                    },
                )));
            }
            if !certreq.is_empty() {
                inner.push(Payload::new(PayloadBody::CertReq(
                    ferrosec_wire::ikev2::Certificate {
                        encoding: CertEncoding::X509_SIGNATURE,
                        data: &certreq,
                    },
                )));
            }
            //= https://www.rfc-editor.org/rfc/rfc7296#section-3.10.1
            //# HTTP_CERT_LOOKUP_SUPPORTED ... MAY be included in any message that can
            //# include a CERTREQ payload
            if certs.as_ref().is_some_and(|c| c.fetch_hash_and_url) {
                inner.push(Payload::new(PayloadBody::Notify(Notify::new(
                    NotifyType::HTTP_CERT_LOOKUP_SUPPORTED,
                    &[],
                ))));
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.4
        //# ... the INITIAL_CONTACT notification ... asserts that this IKE SA is the only
        //# IKE SA currently active between the authenticated identities.
        // Sent only when we have no other IKE SA with this peer in any state (a crossing
        // IKE_SA_INIT or a re-authentication is not a first contact).
        if first_contact {
            inner.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::INITIAL_CONTACT,
                &[],
            ))));
        }
        inner.push(Payload::new(PayloadBody::Auth(Auth {
            method,
            data: &auth,
        })));
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.19
        //# HDR, SK {IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, CP(CFG_REQUEST), SAi2, TSi, TSr}
        let cp = self.cp_request(sa.peer);
        if let Some(attrs) = &cp {
            inner.push(config_payload::cp_payload(CfgType::CFG_REQUEST, attrs));
        }
        inner.extend([
            Payload::new(PayloadBody::Sa(proposals_to_wire(&props))),
            Payload::new(PayloadBody::TsI(tsi_w)),
            Payload::new(PayloadBody::TsR(tsr_w)),
        ]);
        let id_msg = sa.requests.next_id();
        let header = sa.header(ExchangeType::IKE_AUTH, id_msg, false);
        let Ok(msgs) = sa.protect(&mut *self.rng, &self.config, header, &inner) else {
            return Keep::No;
        };
        for m in &msgs {
            self.send(sa.local, sa.remote, m);
        }
        sa.requests.start(now, msgs, self.config.retransmit);
        sa.state = State::AuthSent(Box::new(AuthSent {
            transcript,
            method,
            child_spi,
            policy: policy.id(),
            offer: Narrowed { tsi, tsr },
        }));
        Keep::Yes
    }

    pub(super) fn info(&self, sa: &IkeSa, peer_id: Identity) -> IkeSaInfo {
        IkeSaInfo {
            handle: IkeSaHandle(sa.our_spi()),
            peer: self.peers[&sa.peer].name.clone(),
            initiator: sa.initiator,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            proposal: sa.proposal.clone().unwrap_or(Selected {
                number: 0,
                protocol: ProtocolId::IKE,
                spi: Vec::new(),
                encr: None,
                prf: None,
                integ: None,
                ke: None,
                addke: [DhGroup::NONE; 7],
                esn: None,
            }),
            local: sa.local,
            remote: sa.remote,
            peer_id,
            nat: sa.nat,
            reauth: None,
            reauth_at: self.next_reauth(sa),
            auth: sa.auth.clone(),
            config: sa.cp.clone(),
        }
    }

    /// When we re-authenticate `sa` next (see [`IkeSaInfo::reauth_at`]).
    pub(super) fn next_reauth(&self, sa: &IkeSa) -> Option<Instant> {
        let l = self.lifetimes_of(sa.peer);
        let m = l.reauth_multiple.filter(|m| *m > 0)?;
        let soft = sa.soft?;
        // R-V2-11 (`lifetime_timeout`): the soft deadline at which rekeys_since_auth + 1
        // reaches the multiple re-authenticates; the ones before it rekey.
        let later = m.saturating_sub(1).saturating_sub(sa.rekeys_since_auth);
        if later == 0 {
            return Some(soft);
        }
        let ike = l.ike?;
        let period = ike.lifetime.saturating_sub(ike.margin);
        soft.checked_add(period.checked_mul(later)?)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_info(
        &self,
        sa: &IkeSa,
        policy: &str,
        sel: &Selected,
        inbound: Spi,
        outbound: Spi,
        ni: &[u8],
        nr: &[u8],
        g_ir: Option<&Secret>,
        tsi: TsSet,
        tsr: TsSet,
        exchange_initiator: bool,
        key_exchanges: Vec<DhGroup>,
    ) -> Result<ChildSaInfo, Failure> {
        // R-DP-2 (RFC 3948 §2: UDP encapsulation is for ESP only).
        if sel.protocol == ProtocolId::AH && (sa.nat.0 || sa.nat.1) {
            return Err(Failure::AhWithNat);
        }
        let keys = sa.keys.as_ref().ok_or(Failure::Local(LocalError::NoKeys))?;
        let (encr, integ) = match sel.encr {
            Some((e, k)) => {
                let suite = self
                    .provider
                    .esp(e.0, k, sel.integ.map(|i| i.0))
                    .map_err(|why| unsupported("Child SA algorithms", why))?;
                (Some(suite.encr), suite.integ)
            }
            None => {
                let i = sel
                    .integ
                    .ok_or(Failure::Local(LocalError::AhWithoutIntegrity))?;
                let alg = self
                    .provider
                    .integrity(i.0)
                    .map_err(|why| unsupported("Child SA integrity", why))?;
                (None, Some(alg))
            }
        };
        let encr_len = encr.map_or(0, |e| e.keymat_len());
        let integ_len = integ.map_or(0, |i| i.key_len());
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.17
        //# KEYMAT = prf+(SK_d, Ni | Nr)
        let g = g_ir.map(Secret::expose);
        let k = ChildSaKeys::derive(keys.prf, &keys.sk_d, g, ni, nr, encr_len, integ_len)
            .map_err(|why| derivation("Child SA", why))?;
        let i_keys = ChildKeys {
            encr: k.encr_i,
            integ: k.integ_i,
        };
        let r_keys = ChildKeys {
            encr: k.encr_r,
            integ: k.integ_r,
        };
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.17
        //# All keys for SAs carrying data from the initiator to the responder are taken before
        //# SAs going from the responder to the initiator.
        // "Initiator" is the initiator of the exchange that creates the Child SA (as are Ni, Nr,
        // TSi and TSr), not of the IKE SA: a CREATE_CHILD_SA may come from either side.
        let (inbound_keys, outbound_keys, local_ts, remote_ts) = if exchange_initiator {
            (r_keys, i_keys, tsi, tsr)
        } else {
            (i_keys, r_keys, tsr, tsi)
        };
        Ok(ChildSaInfo {
            outbound_deferred: false,
            lifesize: None,
            ike_sa: IkeSaHandle(sa.our_spi()),
            policy: policy.to_owned(),
            protocol: sel.protocol,
            inbound_spi: inbound,
            outbound_spi: outbound,
            encr,
            integ,
            esn: sel.esn == Some(ferrosec_wire::ikev2::EsnId::ESN),
            inbound: inbound_keys,
            outbound: outbound_keys,
            local_ts,
            remote_ts,
            local: sa.local,
            remote: sa.remote,
            udp_encap: sa.nat.0 || sa.nat.1,
            initiator: exchange_initiator,
            key_exchanges: Some(key_exchanges),
        })
    }

    /// Responder: IKE_AUTH request on a half-open SA.
    pub(super) fn handle_auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        let State::HalfOpen { transcript, .. } = &sa.state else {
            return Keep::Yes;
        };
        let cfg = self.peers[&sa.peer].clone();
        let Found {
            idi,
            auth,
            sa: child_sa,
            tsi,
            tsr,
            ..
        } = Found::of(inner);
        let fail = |this: &mut Self, sa: &mut IkeSa, reason: Failure| {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.2
            //# If the error occurs on the responder, the notification is returned in the
            //# protected response, and is usually the only payload in that response.
            // Every failed authentication gets the same answer, whatever check failed (the
            // log has the reason; the peer does not learn which check it was).
            let (ty, data) = Rejection::AuthFailed.notify();
            this.respond(
                sa,
                header,
                &[Payload::new(PayloadBody::Notify(Notify::new(ty, &data)))],
            );
            this.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                cfg.name.clone(),
                false,
                reason,
            );
            Keep::No
        };
        let (Some(idi), Some(auth)) = (idi, auth) else {
            return fail(
                self,
                sa,
                Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_AUTH.into(),
                    response: false,
                    what: Malformed::Missing("IDi or AUTH"),
                },
            );
        };
        let peer_id = Identity {
            ty: idi.id_type,
            data: idi.data.to_vec(),
        };
        if let Some(expected) = &cfg.peer_id
            && !expected.matches(&peer_id)
        {
            return fail(
                self,
                sa,
                Failure::IdMismatch {
                    presented: peer_id,
                    expected: expected.clone(),
                },
            );
        }
        let Some(keys) = &sa.keys else {
            return Keep::No;
        };
        let mac = Self::signed_octets_mac(keys, true, &peer_id);
        let peer_cert = match self.check_peer_auth(
            now,
            sa.peer,
            keys,
            &auth,
            &peer_id,
            inner,
            [
                &transcript.msg1,
                &transcript.nr,
                mac.expose(),
                &transcript.inter.signed_tail(),
            ],
        ) {
            Ok(c) => c,
            Err(f) => return fail(self, sa, f),
        };
        // Authenticated. Our AUTH: msg2 | Ni | prf(SK_pr, IDr').
        let id = self.local_id(sa);
        let mac = Self::signed_octets_mac(keys, false, &id);
        let (method, our_auth) = match self.our_auth(
            sa.peer,
            keys,
            [
                &transcript.msg2,
                &transcript.ni,
                mac.expose(),
                &transcript.inter.signed_tail(),
            ],
            transcript.peer_hashes.as_deref(),
        ) {
            Ok(a) => a,
            Err(f) => return fail(self, sa, f),
        };
        sa.auth = self.auth_info(sa.peer, method, auth.method, peer_cert.as_ref());
        let certs = self.our_certs(sa.peer);
        let (ni, nr) = (transcript.ni.clone(), transcript.nr.clone());
        // The configuration payload (R-V2-12): addresses leased before the selectors are
        // narrowed to them; a refusal here means no Child SA (§3.10.1).
        let mut child_err: Option<Failure> = None;
        let cp_reply = match self.cp_serve(sa, &peer_id, inner) {
            Ok(a) => a,
            Err(f) => {
                child_err = Some(f);
                None
            }
        };
        // The first Child SA.
        let mut child: Option<(Selected, PolicyId, Narrowed)> = None;
        if let (None, Some(csa), Some(tsi), Some(tsr)) = (&child_err, child_sa, tsi, tsr) {
            // The TS pick the policy, then that policy's proposals are selected from.
            match select_child(sa, &cfg, &offered_proposals(csa), &tsi, &tsr, None, true) {
                Ok(c) => child = Some((c.sel, c.policy, c.narrowed)),
                Err(e) => child_err = Some(e),
            }
        }
        // Otherwise childless (RFC 6023) or malformed: no Child SA.
        let our_spi = self.new_child_spi();
        let mut info = None;
        if let Some((sel, idx, n)) = &child {
            let outbound = sel
                .spi
                .as_slice()
                .try_into()
                .ok()
                .map(|b: [u8; 4]| Spi(u32::from_be_bytes(b)));
            match outbound {
                Some(out) => match self.child_info(
                    sa,
                    cfg.policy(*idx).map_or("", |p| p.name()),
                    sel,
                    our_spi,
                    out,
                    &ni,
                    &nr,
                    None,
                    n.tsi.clone(),
                    n.tsr.clone(),
                    false,      // IKE_AUTH: we answer
                    Vec::new(), // no key exchange: SK_d and the IKE_SA_INIT nonces
                ) {
                    Ok(i) => info = Some(i),
                    Err(f) => child_err = Some(f),
                },
                None => {
                    child_err = Some(Failure::PeerMisbehaved {
                        exchange: ExchangeType::IKE_AUTH.into(),
                        response: false,
                        what: Malformed::SpiSize(4),
                    })
                }
            }
        }
        let answer = child
            .as_ref()
            .map(|(sel, _, _)| sel.to_proposal(our_spi.0.to_be_bytes().to_vec()));
        let tsi_w = child.as_ref().map(|(_, _, n)| n.tsi.to_wire());
        let tsr_w = child.as_ref().map(|(_, _, n)| n.tsr.to_wire());
        //= https://www.rfc-editor.org/rfc/rfc7296#section-1.2
        //# HDR, SK {IDr, [CERT,] AUTH, SAr2, TSi, TSr}
        let mut out = vec![Payload::new(PayloadBody::IdR(Identification {
            id_type: id.ty,
            data: &id.data,
        }))];
        //= https://www.rfc-editor.org/rfc/rfc7296#section-3.10.1
        //# HTTP_CERT_LOOKUP_SUPPORTED ... indicates that the sender is capable of looking up
        //# certificates based on an HTTP-based URL
        let peer_fetches = find_notify(inner, NotifyType::HTTP_CERT_LOOKUP_SUPPORTED).is_some();
        let cert_data = certs
            .as_ref()
            .map(|c| c.cert_payloads(peer_fetches))
            .unwrap_or_default();
        for (encoding, data) in &cert_data {
            out.push(Payload::new(PayloadBody::Cert(
                ferrosec_wire::ikev2::Certificate {
                    encoding: *encoding,
                    data,
                },
            )));
        }
        out.push(Payload::new(PayloadBody::Auth(Auth {
            method,
            data: &our_auth,
        })));
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.19
        //# HDR, SK {IDr, [CERT,] AUTH, CP(CFG_REPLY), SAr2, TSi, TSr}
        if let Some(attrs) = &cp_reply {
            out.push(config_payload::cp_payload(CfgType::CFG_REPLY, attrs));
        }
        let child_refusal = child_err.as_ref().map(|f| Rejection::of(f).notify());
        if let Some((ty, data)) = &child_refusal {
            out.push(Payload::new(PayloadBody::Notify(Notify::new(*ty, data))));
        } else if let (Some(a), Some(ti), Some(tr), Some((sel, _, _))) =
            (&answer, tsi_w, tsr_w, &child)
        {
            out.push(Payload::new(PayloadBody::Sa(Sa {
                proposals: vec![a.to_wire(sel.number)],
            })));
            out.push(Payload::new(PayloadBody::TsI(ti)));
            out.push(Payload::new(PayloadBody::TsR(tr)));
        }
        self.respond(sa, header, &out);
        sa.state = State::Established;
        sa.liveness = Liveness::new(cfg.liveness, now);
        let ic = find_notify(inner, NotifyType::INITIAL_CONTACT).is_some();
        self.on_established(now, sa, peer_id, ic);
        if let Some(f) = child_err {
            self.failed_in(ExchangeType::IKE_AUTH, Some(sa), cfg.name.clone(), true, f);
        } else if let (Some(i), Some((_, policy, _))) = (info, &child) {
            self.add_child(now, sa, i, *policy);
        }
        Keep::Yes
    }

    /// Sets the IKE SA's lifetimes (from `now`).
    pub(super) fn set_ike_lifetimes(&mut self, now: Instant, sa: &mut IkeSa) {
        let l = self.lifetimes_of(sa.peer);
        let (soft, hard) = self.deadlines(now, l.ike);
        sa.soft = soft;
        sa.hard = hard;
    }

    /// An IKE SA is authenticated (either role): announce it, handle INITIAL_CONTACT and
    /// duplicates of a crossing IKE_SA_INIT.
    pub(super) fn on_established(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        peer_id: Identity,
        initial_contact: bool,
    ) {
        sa.peer_id = Some(peer_id.clone());
        sa.announced = true;
        sa.established_at = Some(now);
        self.set_ike_lifetimes(now, sa);
        let mut up = self.info(sa, peer_id.clone());
        up.reauth = sa
            .replaces
            .zip(sa.reauth_reason)
            .map(|(old, reason)| Reauthentication {
                replaces: IkeSaHandle(old),
                reason,
            });
        self.event(Event::IkeSaUp(up));
        // INITIAL_CONTACT and duplicates reach the peer's other SAs: the endpoint's work.
        self.actions.push(Action::Established {
            spi: sa.our_spi(),
            peer_id,
            initial_contact,
        });
    }

    /// Records a new Child SA (either role) with its lifetimes and tells the data plane.
    pub(super) fn add_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        info: ChildSaInfo,
        policy: PolicyId,
    ) {
        // The policy's own lifetime (its tunnel's IPSec crypto profile).
        let l = self.peers[&sa.peer].policy(policy).and_then(|p| p.lifetime);
        let (soft, hard) = self.deadlines(now, l);
        sa.push_child(ChildRecord {
            inbound: info.inbound_spi,
            outbound: info.outbound_spi,
            protocol: info.protocol,
            policy,
            state: ChildState::Installed,
            soft,
            hard,
            fingerprints: (
                key_fingerprint(&info.inbound, &info.outbound),
                key_fingerprint(&info.outbound, &info.inbound),
            ),
            switch: None,
        });
        self.event(Event::ChildSaUp(info));
    }

    /// Initiator: IKE_AUTH response.
    pub(super) fn handle_auth_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        inner: &[Payload<'_>],
    ) -> Keep {
        let cfg = self.peers[&sa.peer].clone();
        let State::AuthSent(st) = std::mem::replace(&mut sa.state, State::Established) else {
            return Keep::No;
        };
        let Found { idr, auth, .. } = Found::of(inner);
        let (Some(idr), Some(auth)) = (idr, auth) else {
            let notify = first_error_notify(inner).unwrap_or(NotifyType::INVALID_SYNTAX);
            self.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                cfg.name.clone(),
                false,
                Failure::PeerRefused { notify },
            );
            return Keep::No;
        };
        let peer_id = Identity {
            ty: idr.id_type,
            data: idr.data.to_vec(),
        };
        if let Some(expected) = &cfg.peer_id
            && !expected.matches(&peer_id)
        {
            self.tell_auth_failed(sa);
            self.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                cfg.name.clone(),
                false,
                Failure::IdMismatch {
                    presented: peer_id,
                    expected: expected.clone(),
                },
            );
            return Keep::No;
        }
        let Some(keys) = &sa.keys else {
            return Keep::No;
        };
        let mac = Self::signed_octets_mac(keys, false, &peer_id);
        let peer_cert = match self.check_peer_auth(
            now,
            sa.peer,
            keys,
            &auth,
            &peer_id,
            inner,
            [
                &st.transcript.msg2,
                &st.transcript.ni,
                mac.expose(),
                &st.transcript.inter.signed_tail(),
            ],
        ) {
            Ok(c) => c,
            Err(f) => {
                self.tell_auth_failed(sa);
                self.failed_in(ExchangeType::IKE_AUTH, Some(sa), cfg.name.clone(), false, f);
                return Keep::No;
            }
        };
        sa.auth = self.auth_info(sa.peer, st.method, auth.method, peer_cert.as_ref());
        // What the peer's CP(CFG_REPLY) assigned us (R-V2-12) goes up with the IKE SA.
        self.cp_received(sa, inner);
        self.on_established(now, sa, peer_id, false);
        self.handle_auth_child_answer(now, sa, &cfg, &st, inner);
        // One Child SA per proxy ID (R-V2-6): the others with CREATE_CHILD_SA, whether or
        // not the first one was refused (each tunnel stands on its own).
        for policy in cfg.policies.iter().skip(1) {
            sa.push_work(Work::CreateChild {
                policy: policy.id(),
                rekey: None,
                group: None,
                tries: 0,
            });
        }
        Keep::Yes
    }

    /// Initiator: the first Child SA in the IKE_AUTH response (the IKE SA is established).
    fn handle_auth_child_answer(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        cfg: &PeerConfig,
        st: &AuthSent,
        inner: &[Payload<'_>],
    ) {
        let Found {
            sa: child_sa,
            tsi,
            tsr,
            ..
        } = Found::of(inner);
        if let Some(n) = first_error_notify(inner) {
            // Without the address the peer could not or would not give (R-V2-12), the IKE SA
            // is of no use: it goes, and the next negotiation asks again.
            let cp_refused = matches!(
                n,
                NotifyType::INTERNAL_ADDRESS_FAILURE | NotifyType::FAILED_CP_REQUIRED
            );
            let why = match cfg.policy(st.policy) {
                Some(p) => Failure::ChildRefused {
                    policy: p.ts.name.clone(),
                    notify: n,
                    offered: proposal::describe(&strip_ke(&p.proposals)),
                    tsi: st.offer.tsi.clone(),
                    tsr: st.offer.tsr.clone(),
                },
                None => Failure::PeerRefused { notify: n },
            };
            self.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                cfg.name.clone(),
                !cp_refused,
                why,
            );
            if cp_refused {
                sa.push_work_front(Work::DeleteIke);
            }
            return;
        }
        let (Some(csa), Some(tsi), Some(tsr)) = (child_sa, tsi, tsr) else {
            self.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                cfg.name.clone(),
                true,
                Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_AUTH.into(),
                    response: true,
                    what: Malformed::Missing("SA, TSi or TSr"),
                },
            );
            return;
        };
        let rejected_proto = csa
            .proposals
            .first()
            .map_or(ProtocolId::ESP, |p| p.protocol);
        // What we offered: the policy's own proposals.
        let offered = cfg
            .policy(st.policy)
            .map(|p| strip_ke(&p.proposals))
            .unwrap_or_default();
        let child_props = with_spi(&offered, st.child_spi);
        let (Some(wire_answer), 1) = (csa.proposals.first(), csa.proposals.len()) else {
            self.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                cfg.name.clone(),
                true,
                Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_AUTH.into(),
                    response: true,
                    what: Malformed::ProposalCount,
                },
            );
            // The peer installed what it answered: have it deleted there.
            sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
            return;
        };
        let answer = Proposal::from_wire(wire_answer);
        let sel = match proposal::check_answer(
            &child_props,
            wire_answer.number,
            &answer,
            SelectOptions { ignore_ke: true },
        ) {
            Ok(s) => s,
            Err(e) => {
                self.failed_in(
                    ExchangeType::IKE_AUTH,
                    Some(sa),
                    cfg.name.clone(),
                    true,
                    Failure::BadAnswer(e),
                );
                // The peer installed what it answered: have it deleted there.
                sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
                return;
            }
        };
        let got = Narrowed { tsi, tsr };
        if !ts::check_response(&st.offer, &got) {
            self.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                cfg.name.clone(),
                true,
                Failure::BadTsAnswer {
                    tsi: got.tsi,
                    tsr: got.tsr,
                    offered_tsi: st.offer.tsi.clone(),
                    offered_tsr: st.offer.tsr.clone(),
                },
            );
            // The peer installed what it answered: have it deleted there.
            sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
            return;
        }
        let Some(outbound) = wire_answer.child_spi() else {
            self.failed_in(
                ExchangeType::IKE_AUTH,
                Some(sa),
                cfg.name.clone(),
                true,
                Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_AUTH.into(),
                    response: true,
                    what: Malformed::SpiSize(4),
                },
            );
            // The peer installed what it answered: have it deleted there.
            sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
            return;
        };
        let policy_name = cfg
            .policy(st.policy)
            .map(|p| p.name().to_owned())
            .unwrap_or_default();
        match self.child_info(
            sa,
            &policy_name,
            &sel,
            st.child_spi,
            outbound,
            &st.transcript.ni,
            &st.transcript.nr,
            None,
            got.tsi,
            got.tsr,
            true,       // IKE_AUTH: we asked
            Vec::new(), // no key exchange: SK_d and the IKE_SA_INIT nonces
        ) {
            Ok(i) => self.add_child(now, sa, i, st.policy),
            Err(f) => {
                sa.push_work(Work::DeleteRejected(rejected_proto, st.child_spi));
                self.failed_in(ExchangeType::IKE_AUTH, Some(sa), cfg.name.clone(), true, f);
            }
        }
    }

    /// The responder's AUTH did not verify: tell it in a new INFORMATIONAL exchange.
    pub(super) fn tell_auth_failed(&mut self, sa: &mut IkeSa) {
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.2
        //# If the error occurred on the initiator, the notification MAY be returned in a
        //# separate INFORMATIONAL exchange, usually with no other payloads.
        let (ty, data) = Rejection::AuthFailed.notify();
        self.send_once(
            sa,
            ExchangeType::INFORMATIONAL,
            &[Payload::new(PayloadBody::Notify(Notify::new(ty, &data)))],
        );
    }

    // -----------------------------------------------------------------------------------
    // Protected requests and responses
}
