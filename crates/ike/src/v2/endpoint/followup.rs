//! IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): the additional key exchanges (ML-KEM) of a
//! CREATE_CHILD_SA exchange, for IKE SA rekeys and for Child SAs created or rekeyed alike.
//!
//! ```text
//! HDR(CREATE_CHILD_SA), SK {SA, Ni, KEi, ...}  -->
//!       <--  HDR(CREATE_CHILD_SA), SK {SA, Nr, KEr, N(ADDITIONAL_KEY_EXCHANGE)(link1), ...}
//! HDR(IKE_FOLLOWUP_KE), SK {KEi(1), N(ADDITIONAL_KEY_EXCHANGE)(link1)}  -->
//!       <--  HDR(IKE_FOLLOWUP_KE), SK {KEr(1), N(ADDITIONAL_KEY_EXCHANGE)(link2)}
//! ...   (the last response carries no link)
//!
//! IKE SA rekey: SKEYSEED = prf(SK_d (old), g^ir (new) | SK(1) | ... | SK(n) | Ni | Nr)
//! Child SA:     KEYMAT   = prf+(SK_d, g^ir (new) | SK(1) | ... | SK(n) | Ni | Nr)
//! ```
//!
//! Nothing is derived, installed or reported before the last exchange: the initiator keeps
//! its request in [`Pending::Followup`], the responder one [`Responding`] per IKE SA (a new
//! CREATE_CHILD_SA with additional key exchanges replaces it), dropped when its deadline
//! passes. The link is 8 random bytes, new for every step.
//!
//! Collisions (RFC 7296 §2.8.1, §2.8.2): a rekey request of the peer that crosses our
//! CREATE_CHILD_SA is answered as usual; once our answer comes, the four nonces decide, as
//! strongSwan 6 does. The winner goes on with its IKE_FOLLOWUP_KE exchanges and drops the
//! state it keeps for the peer's exchange; the loser sends none and waits for the winner's,
//! whose completion then replaces the SA. A rekey request of the peer that comes once our
//! IKE_FOLLOWUP_KE exchanges for the same SA have started is answered TEMPORARY_FAILURE.

use super::*;

/// Link data length we send (the peer's may be any length).
const LINK_LEN: usize = 8;

/// Tests: how to spoil our next IKE_FOLLOWUP_KE request.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tamper {
    /// Another link than the one the peer gave.
    Link,
    /// No ADDITIONAL_KEY_EXCHANGE notify.
    NoLink,
    /// The KE payload names ML-KEM-1024 (the data stays ours).
    Method,
    /// The KE data one byte short (the peer's encapsulation fails).
    ShortKe,
    /// No KE payload.
    NoKe,
}

/// What an answered CREATE_CHILD_SA of ours makes once its additional key exchanges are done.
#[derive(Debug)]
pub(super) enum Made {
    /// Our IKE SA rekey.
    IkeRekey {
        req: IkeRekeyRequest,
        sel: Selected,
        peer_spi: IkeSpi,
        nr: Vec<u8>,
    },
    /// Our new Child SA, or the rekey of one.
    Child {
        req: ChildRequest,
        answer: ChildAnswer,
    },
}

/// A checked CREATE_CHILD_SA answer for a Child SA, before its keys are derived.
#[derive(Debug)]
pub(super) struct ChildAnswer {
    pub(super) sel: Selected,
    pub(super) outbound: Spi,
    pub(super) got: Narrowed,
    pub(super) nr: Vec<u8>,
}

/// Initiator: our IKE_FOLLOWUP_KE request in flight.
#[derive(Debug)]
pub(super) struct Followup {
    pub(super) made: Made,
    /// The additional key exchanges, in order.
    methods: Vec<DhGroup>,
    /// How many are done (the one in flight is `methods[done]`).
    done: usize,
    kex: Box<dyn ActiveKeyExchange>,
    /// g^ir | SK(1) | ... | SK(done).
    secret: Secret,
}

impl Followup {
    /// The old Child SA our exchange rekeys, if any.
    pub(super) fn rekeys(&self) -> Option<Spi> {
        match &self.made {
            Made::Child { req, .. } => req.rekey,
            Made::IkeRekey { .. } => None,
        }
    }

    /// Whether it belongs to a rekey of the IKE SA.
    pub(super) fn ike(&self) -> bool {
        matches!(self.made, Made::IkeRekey { .. })
    }
}

/// What the peer's CREATE_CHILD_SA makes once its additional key exchanges are done.
#[derive(Debug)]
pub(super) enum Makes {
    IkeRekey {
        sel: Selected,
        peer_spi: IkeSpi,
        our_spi: IkeSpi,
    },
    Child {
        policy: PolicyId,
        sel: Selected,
        inbound: Spi,
        outbound: Spi,
        narrowed: Narrowed,
        /// The old pair it rekeys (our inbound SPI).
        rekeyed: Option<Spi>,
    },
}

/// Responder: the additional key exchanges the peer owes for its CREATE_CHILD_SA.
#[derive(Debug)]
pub(super) struct Responding {
    pub(super) makes: Makes,
    /// The link the next request must carry.
    link: Vec<u8>,
    /// Dropped at this instant if the next request has not come.
    pub(super) expires: Instant,
    /// The CREATE_CHILD_SA request's Message ID.
    pub(super) made_in: MessageId,
    ni: Vec<u8>,
    nr: Vec<u8>,
    methods: Vec<DhGroup>,
    done: usize,
    /// g^ir | SK(1) | ... | SK(done).
    secret: Secret,
}

impl Responding {
    fn what(&self) -> &'static str {
        match self.makes {
            Makes::IkeRekey { .. } => "IKE SA rekey",
            Makes::Child { .. } => "Child SA",
        }
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "none".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn link_of<'a>(inner: &'a [Payload<'a>]) -> Option<&'a [u8]> {
    find_notify(inner, NotifyType::ADDITIONAL_KEY_EXCHANGE).map(|n| n.data)
}

fn ke_of<'a>(inner: &'a [Payload<'a>]) -> Option<KeyExchange<'a>> {
    inner.iter().find_map(|p| match &p.body {
        PayloadBody::Ke(k) => Some(*k),
        _ => None,
    })
}

impl Core {
    /// Initiator: the CREATE_CHILD_SA answer chose additional key exchanges; starts the first
    /// IKE_FOLLOWUP_KE exchange with the link of the answer. `Err` with the failure when
    /// the answer gave no link or the key exchange cannot start.
    pub(super) fn start_followups(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        made: Made,
        g_ir: Secret,
        inner: &[Payload<'_>],
    ) -> Result<(), Box<(Made, Failure)>> {
        let methods: Vec<DhGroup> = match &made {
            Made::IkeRekey { sel, .. } => sel.additional().collect(),
            Made::Child { answer, .. } => answer.sel.additional().collect(),
        };
        let Some(link) = link_of(inner).filter(|l| !l.is_empty()) else {
            let f = Failure::Followup(FollowupFailure::NoLink {
                after: "CREATE_CHILD_SA",
                methods,
            });
            return Err(Box::new((made, f)));
        };
        let link = link.to_vec();
        let kex = match self.start_kex(methods[0]) {
            Ok(k) => k,
            Err(f) => return Err(Box::new((made, f))),
        };
        let f = Followup {
            made,
            kex,
            methods,
            done: 0,
            secret: g_ir,
        };
        self.send_followup(now, sa, f, &link);
        Ok(())
    }

    fn start_kex(&mut self, g: DhGroup) -> Result<Box<dyn ActiveKeyExchange>, Failure> {
        self.provider
            .key_exchange(g.0)
            .and_then(|k| k.start(&mut *self.rng))
            .map_err(|why| Failure::Crypto(CryptoFailure::KeyExchange { group: g.0, why }))
    }

    fn send_followup(&mut self, now: Instant, sa: &mut IkeSa, f: Followup, link: &[u8]) {
        let g = f.methods[f.done];
        #[allow(unused_mut)]
        let (mut g, mut data, mut link) = (g, f.kex.public_key(), link);
        #[cfg(test)]
        let tamper = self.followup_tamper.take();
        #[cfg(test)]
        match tamper {
            Some(Tamper::Link) => link = b"not-it",
            Some(Tamper::NoLink) => link = b"",
            Some(Tamper::Method) => g = DhGroup::ML_KEM_1024,
            Some(Tamper::ShortKe) => data = &data[..data.len() - 1],
            _ => {}
        }
        // RFC 9370 §2.2.4: HDR(IKE_FOLLOWUP_KE), SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)}
        #[allow(unused_mut)]
        let mut inner = vec![
            Payload::new(PayloadBody::Ke(KeyExchange { group: g, data })),
            Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::ADDITIONAL_KEY_EXCHANGE,
                link,
            ))),
        ];
        #[cfg(test)]
        match tamper {
            Some(Tamper::NoLink) => {
                inner.pop();
            }
            Some(Tamper::NoKe) => {
                inner.remove(0);
            }
            _ => {}
        }
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::IKE_FOLLOWUP_KE, id, false);
        match sa.protect(&mut *self.rng, &self.config, header, &inner) {
            Ok(msgs) => {
                for m in &msgs {
                    self.send(sa.local, sa.remote, m);
                }
                sa.requests.start(now, msgs, self.config.retransmit);
                sa.pending = Some(Pending::Followup(Box::new(f)));
            }
            Err(e) => {
                let name = self.peers[&sa.peer].name.clone();
                let why = Failure::Crypto(CryptoFailure::Unsupported {
                    what: format!("sealing the IKE_FOLLOWUP_KE request ({e})"),
                    why: ferrosec_crypto::Error::Unsupported("message cannot be sealed"),
                });
                self.followup_over(now, sa, f.made, None);
                self.failed_in(ExchangeType::IKE_FOLLOWUP_KE, Some(sa), name, true, why);
            }
        }
    }

    /// Initiator: the IKE_FOLLOWUP_KE response (authentic).
    pub(super) fn handle_followup_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        mut f: Followup,
        inner: &[Payload<'_>],
    ) {
        let name = self.peers[&sa.peer].name.clone();
        if let Some(n) = first_error_notify(inner) {
            // STATE_NOT_FOUND (the peer dropped it), TEMPORARY_FAILURE, ...: the SA is not
            // made; the whole rekey or create is tried again a little later.
            self.followup_over(now, sa, f.made, Some(n));
            self.failed_in(
                ExchangeType::IKE_FOLLOWUP_KE,
                Some(sa),
                name,
                true,
                Failure::PeerRefused { notify: n },
            );
            return;
        }
        let index = f.done + 1;
        let expected = f.methods[f.done];
        let shared = match ke_of(inner) {
            None => Err(Failure::Followup(FollowupFailure::MissingKe {
                index,
                expected,
                response: true,
            })),
            Some(k) if k.group != expected => {
                Err(Failure::Followup(FollowupFailure::WrongMethod {
                    index,
                    expected,
                    got: k.group,
                    response: true,
                }))
            }
            Some(k) => f
                .kex
                .complete(k.data)
                .map_err(|why| peer_kex(expected.0, why)),
        };
        let shared = match shared {
            Ok(s) => s,
            Err(why) => {
                self.followup_over(now, sa, f.made, None);
                self.failed_in(ExchangeType::IKE_FOLLOWUP_KE, Some(sa), name, true, why);
                return;
            }
        };
        f.secret = Secret::concat(&[&f.secret, &shared]);
        f.done += 1;
        if f.done < f.methods.len() {
            let Some(link) = link_of(inner).filter(|l| !l.is_empty()).map(<[u8]>::to_vec) else {
                let why = Failure::Followup(FollowupFailure::NoLink {
                    after: "IKE_FOLLOWUP_KE",
                    methods: f.methods[f.done..].to_vec(),
                });
                self.followup_over(now, sa, f.made, None);
                self.failed_in(ExchangeType::IKE_FOLLOWUP_KE, Some(sa), name, true, why);
                return;
            };
            match self.start_kex(f.methods[f.done]) {
                Ok(k) => f.kex = k,
                Err(why) => {
                    self.followup_over(now, sa, f.made, None);
                    self.failed_in(ExchangeType::IKE_FOLLOWUP_KE, Some(sa), name, true, why);
                    return;
                }
            }
            self.send_followup(now, sa, f, &link);
            return;
        }
        // All done: the new SA, from every shared secret.
        match f.made {
            Made::IkeRekey {
                req,
                sel,
                peer_spi,
                nr,
            } => self.finish_ike_rekey(now, sa, req, sel, peer_spi, nr, &f.secret),
            Made::Child { req, answer } => {
                let cfg = self.peers[&sa.peer].clone();
                match self.child_info_of(sa, &cfg, &req, &answer, Some(&f.secret)) {
                    Ok(info) => self.finish_child(now, sa, req, info, answer.nr),
                    Err(why) => {
                        self.followup_over(now, sa, Made::Child { req, answer }, None);
                        self.failed_in(ExchangeType::IKE_FOLLOWUP_KE, Some(sa), name, true, why);
                    }
                }
            }
        }
    }

    /// Initiator: our exchange ends without a new SA (`notify`: the peer's refusal). The
    /// rekeyed SA is back to normal; a refusal that says "later" retries the whole exchange.
    pub(super) fn followup_over(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        made: Made,
        notify: Option<NotifyType>,
    ) {
        let retry = matches!(
            notify,
            Some(NotifyType::TEMPORARY_FAILURE | NotifyType::STATE_NOT_FOUND)
        );
        match made {
            Made::IkeRekey { req, .. } => {
                sa.life = Life::Normal;
                if retry && req.tries < MAX_TRIES {
                    let w = Work::RekeyIke {
                        group: Some(DhGroup(req.kex.group())),
                        tries: req.tries + 1,
                    };
                    self.defer(now, sa, w);
                }
            }
            Made::Child { req, answer } => {
                Self::rekey_failed(sa, req.rekey);
                if notify.is_none() {
                    // The failure is ours: the peer may have made the pair (its last answer
                    // came), so it is deleted there (harmless when it holds none).
                    sa.push_work_front(Work::DeleteRejected(answer.sel.protocol, req.spi));
                }
                if retry && req.tries < MAX_TRIES {
                    let w = Work::CreateChild {
                        policy: req.policy,
                        rekey: req.rekey,
                        group: req.kex.as_ref().map(|k| DhGroup(k.group())),
                        tries: req.tries + 1,
                    };
                    self.defer(now, sa, w);
                }
            }
        }
    }

    /// Responder: a CREATE_CHILD_SA we answer chose additional key exchanges: the state for
    /// the peer's IKE_FOLLOWUP_KE requests, and the link our answer carries.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn expect_followups(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        makes: Makes,
        made_in: MessageId,
        ni: &[u8],
        nr: &[u8],
        g_ir: Secret,
    ) -> Vec<u8> {
        let methods: Vec<DhGroup> = match &makes {
            Makes::IkeRekey { sel, .. } | Makes::Child { sel, .. } => sel.additional().collect(),
        };
        let link = self.random_bytes(LINK_LEN);
        sa.followup = Some(Box::new(Responding {
            makes,
            link: link.clone(),
            expires: now + self.config.retransmit.total(),
            made_in,
            ni: ni.to_vec(),
            nr: nr.to_vec(),
            methods,
            done: 0,
            secret: g_ir,
        }));
        link
    }

    /// Responder: an IKE_FOLLOWUP_KE request (authentic, new).
    pub(super) fn handle_followup_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        inner: &[Payload<'_>],
    ) -> Keep {
        let name = self.peers[&sa.peer].name.clone();
        let got = link_of(inner).unwrap_or_default();
        let refuse = |this: &mut Self, sa: &mut IkeSa, r: Rejection, f: FollowupFailure| {
            this.child_error(sa, header, r);
            this.failed_in(
                ExchangeType::IKE_FOLLOWUP_KE,
                Some(sa),
                name.clone(),
                true,
                Failure::Followup(f),
            );
            Keep::Yes
        };
        // RFC 9370 §2.2.4: a request the responder holds no state for (never started, timed
        // out, dropped after a collision) or whose link is not the one given is answered
        // STATE_NOT_FOUND; a KE payload missing or of another method, INVALID_SYNTAX.
        let Some(mut st) = sa.followup.take() else {
            let f = FollowupFailure::NoState { got: hex(got) };
            return refuse(self, sa, Rejection::StateNotFound, f);
        };
        if !ferrosec_crypto::ct_eq(got, &st.link) {
            let f = FollowupFailure::WrongLink {
                expected: hex(&st.link),
                got: hex(got),
                made_in: st.made_in.0,
            };
            return refuse(self, sa, Rejection::StateNotFound, f);
        }
        let index = st.done + 1;
        let expected = st.methods[st.done];
        let ke = match ke_of(inner) {
            Some(k) if k.group == expected => k,
            Some(k) => {
                let f = FollowupFailure::WrongMethod {
                    index,
                    expected,
                    got: k.group,
                    response: false,
                };
                return refuse(self, sa, Rejection::Malformed, f);
            }
            None => {
                let f = FollowupFailure::MissingKe {
                    index,
                    expected,
                    response: false,
                };
                return refuse(self, sa, Rejection::Malformed, f);
            }
        };
        let kx = match self
            .provider
            .key_exchange(expected.0)
            .and_then(|k| k.respond(&mut *self.rng, ke.data))
        {
            Ok(kx) => kx,
            Err(why) => {
                self.child_error(sa, header, Rejection::Malformed);
                let f = peer_kex(expected.0, why);
                self.failed_in(ExchangeType::IKE_FOLLOWUP_KE, Some(sa), name, true, f);
                return Keep::Yes;
            }
        };
        st.secret = Secret::concat(&[&st.secret, &kx.shared]);
        st.done += 1;
        let more = st.done < st.methods.len();
        let link = if more {
            self.random_bytes(LINK_LEN)
        } else {
            Vec::new()
        };
        // RFC 9370 §2.2.4: <-- HDR(IKE_FOLLOWUP_KE), SK {KEr(n), [N(ADDITIONAL_KEY_EXCHANGE)]},
        // the link only while more key exchanges follow.
        let mut out = vec![Payload::new(PayloadBody::Ke(KeyExchange {
            group: expected,
            data: &kx.public,
        }))];
        if more {
            out.push(Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::ADDITIONAL_KEY_EXCHANGE,
                &link,
            ))));
        }
        if more {
            self.respond(sa, header, &out);
            st.link = link;
            st.expires = now + self.config.retransmit.total();
            sa.followup = Some(st);
            return Keep::Yes;
        }
        // The last one: the new SA from every shared secret, then the answer (which the
        // initiator takes as the sign that we hold the new SA).
        let Responding {
            makes,
            ni,
            nr,
            secret,
            ..
        } = *st;
        match makes {
            Makes::IkeRekey {
                sel,
                peer_spi,
                our_spi,
            } => {
                #[cfg(test)]
                self.kdf_inputs.push(("ike", secret.expose().len()));
                let Some(old_keys) = &sa.keys else {
                    return Keep::Yes;
                };
                match IkeKeys::derive_rekey(
                    &self.provider,
                    &sel,
                    old_keys,
                    &secret,
                    &ni,
                    &nr,
                    peer_spi,
                    our_spi,
                    false,
                ) {
                    Ok(keys) => {
                        self.respond(sa, header, &out);
                        self.ike_rekeyed_as_responder(
                            now, sa, header, &ni, &nr, peer_spi, our_spi, keys, sel,
                        );
                    }
                    Err(e) => {
                        self.child_error(sa, header, Rejection::NoProposal);
                        let f = derivation("IKE SA", e);
                        self.failed_in(ExchangeType::IKE_FOLLOWUP_KE, Some(sa), name, true, f);
                    }
                }
            }
            Makes::Child {
                policy,
                sel,
                inbound,
                outbound,
                narrowed,
                rekeyed,
            } => {
                let cfg = self.peers[&sa.peer].clone();
                #[cfg(test)]
                self.kdf_inputs.push(("child", secret.expose().len()));
                let kes = std::iter::once(sel.ke)
                    .flatten()
                    .chain(sel.additional())
                    .collect();
                let info = self.child_info(
                    sa,
                    cfg.policy(policy).map_or("", |p| p.name()),
                    &sel,
                    inbound,
                    outbound,
                    &ni,
                    &nr,
                    Some(&secret),
                    narrowed.tsi.clone(),
                    narrowed.tsr.clone(),
                    false,
                    kes,
                );
                match info {
                    Ok(info) => {
                        self.respond(sa, header, &out);
                        self.child_made_as_responder(
                            now, sa, header, info, policy, rekeyed, &ni, &nr,
                        );
                    }
                    Err(f) => {
                        self.child_error(sa, header, Rejection::NoProposal);
                        self.failed_in(ExchangeType::IKE_FOLLOWUP_KE, Some(sa), name, true, f);
                    }
                }
            }
        }
        Keep::Yes
    }

    /// Responder: drops pending additional key exchanges whose deadline passed.
    pub(super) fn followup_timeout(&mut self, now: Instant, sa: &mut IkeSa) {
        if sa.followup.as_ref().is_some_and(|f| now >= f.expires) {
            let Some(st) = sa.followup.take() else {
                return;
            };
            let name = self.peers[&sa.peer].name.clone();
            let f = FollowupFailure::TimedOut {
                index: st.done + 1,
                expected: st.methods[st.done],
                waited: self.config.retransmit.total(),
                what: st.what(),
            };
            self.failed_in(
                ExchangeType::IKE_FOLLOWUP_KE,
                Some(sa),
                name,
                true,
                Failure::Followup(f),
            );
        }
    }
}
