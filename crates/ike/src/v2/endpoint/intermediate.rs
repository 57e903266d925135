//! IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of RFC 9370 (ML-KEM
//! hybrids): after IKE_SA_INIT, one exchange per negotiated ADDKE transform, in order,
//! protected with the keys of the previous step; after each, the IKE SA's keys are updated
//! with the same SPIs, and IKE_AUTH's signed octets cover the IntAuth chain.
//!
//! ```text
//! HDR, SK {KEi(n)}  -->
//!                   <--  HDR, SK {KEr(n)}
//! SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
//! {SK_d(n) | SK_ai(n) | … | SK_pr(n)} = prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr)
//! ```
//!
//! The initiator waits in [`State::IntSent`]; the responder stays half-open (its
//! [`InitTranscript`] counts the exchanges done), so the half-open limits and expiry hold for
//! the whole handshake. ML-KEM's KE payloads (1184/1568 bytes for ML-KEM-768/1024) go through
//! the same sealing as IKE_AUTH: as IKE fragments (RFC 7383) when fragmentation was negotiated
//! and the message would not fit the path.

use super::*;

/// Progress of the additional key exchanges, kept in the [`InitTranscript`] by both sides.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// IKE_INTERMEDIATE exchanges completed.
    pub(super) done: usize,
    /// IntAuth_i(done) and IntAuth_r(done) of RFC 9242 §3.1 (empty before the first).
    pub(super) auth_i: Vec<u8>,
    pub(super) auth_r: Vec<u8>,
}

impl Progress {
    /// What IKE_AUTH's signed octets get after `MACedID` (RFC 9242 §3.1): `IntAuth_iN |
    /// IntAuth_rN | IKE_AUTH_MID`; nothing when no IKE_INTERMEDIATE exchange took place.
    //= https://www.rfc-editor.org/rfc/rfc9242#section-3.1
    //# InitiatorSignedOctets = RealMsg1 | NonceRData | MACedIDForI | IntAuth | IKE_AUTH_MID
    pub(super) fn signed_tail(&self) -> Vec<u8> {
        if self.done == 0 {
            return Vec::new();
        }
        // Message IDs 1..=N went to the IKE_INTERMEDIATE exchanges: IKE_AUTH is N + 1.
        let mid = u32::try_from(self.done + 1).unwrap_or(u32::MAX);
        [&self.auth_i[..], &self.auth_r[..], &mid.to_be_bytes()].concat()
    }
}

/// The initiator after sending IKE_INTERMEDIATE request number `transcript.inter.done + 1`.
#[derive(Debug)]
pub(super) struct IntSent {
    transcript: InitTranscript,
    kex: Box<dyn ActiveKeyExchange>,
    /// IntAuth_i of the request in flight.
    auth_i: Vec<u8>,
}

/// One link of the IntAuth chain (RFC 9242 §3.1): `prf(SK_p, IntAuth(n-1) | A | P)` where A is
/// the IKE header and the Encrypted payload header as if the message were sent whole and held
/// only the inner payloads (Length fields over header + SK header + inner payloads; fragments
/// are computed as the reassembled message), and P the inner payloads in plaintext. SK_p is
/// SK_pi for the initiator's messages and SK_pr for the responder's, of the keys that protect
/// the message.
pub(super) fn int_auth(
    keys: &IkeKeys,
    initiator_side: bool,
    prev: &[u8],
    header: &Header,
    first: PayloadType,
    plain: &[u8],
) -> Vec<u8> {
    let mut a = Vec::with_capacity(32);
    a.extend_from_slice(&header.initiator_spi.0.to_be_bytes());
    a.extend_from_slice(&header.responder_spi.0.to_be_bytes());
    a.push(PayloadType::SK.0);
    a.push(header.version.0);
    a.push(header.exchange_type.0);
    a.push(header.flags.0);
    a.extend_from_slice(&header.message_id.0.to_be_bytes());
    let total = u32::try_from(28 + 4 + plain.len()).unwrap_or(u32::MAX);
    a.extend_from_slice(&total.to_be_bytes());
    a.push(first.0);
    a.push(0);
    let sk_len = u16::try_from(4 + plain.len()).unwrap_or(u16::MAX);
    a.extend_from_slice(&sk_len.to_be_bytes());
    let key = if initiator_side {
        keys.sk_pi()
    } else {
        keys.sk_pr()
    };
    keys.prf.compute(key, &[prev, &a, plain]).expose().to_vec()
}

/// [`int_auth`] of a message we are about to seal.
fn int_auth_of(
    keys: &IkeKeys,
    initiator_side: bool,
    prev: &[u8],
    header: &Header,
    inner: &[Payload<'_>],
) -> Option<Vec<u8>> {
    let mut plain = vec![0u8; ferrosec_wire::ikev2::payloads_len(inner)];
    ferrosec_wire::ikev2::emit_payloads(inner, &mut plain).ok()?;
    let first = inner.first()?.body.payload_type();
    Some(int_auth(keys, initiator_side, prev, header, first, &plain))
}

fn ke_payload<'a>(inner: &'a [Payload<'a>]) -> Option<KeyExchange<'a>> {
    inner.iter().find_map(|p| match &p.body {
        PayloadBody::Ke(k) => Some(*k),
        _ => None,
    })
}

impl State {
    /// We initiated it and it is not authenticated yet (IKE_SA_INIT, IKE_INTERMEDIATE or
    /// IKE_AUTH in flight).
    pub(super) fn initiating(&self) -> bool {
        matches!(
            self,
            State::InitSent(_) | State::IntSent(_) | State::AuthSent(_)
        )
    }
}

impl IkeSa {
    /// The additional key exchange to do next, if any is left.
    fn next_addke(&self, done: usize) -> Option<DhGroup> {
        self.proposal.as_ref()?.additional().nth(done)
    }

    /// Responder: IKE_INTERMEDIATE exchanges are still owed before IKE_AUTH may come.
    pub(super) fn intermediate_owed(&self) -> bool {
        match &self.state {
            State::HalfOpen { transcript, .. } => self.next_addke(transcript.inter.done).is_some(),
            _ => false,
        }
    }

    /// The keys after additional key exchange SK(n) (RFC 9370 §2.2.2): same SPIs and nonces.
    fn update_keys(
        &mut self,
        provider: &Provider,
        shared: &Secret,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<(), Failure> {
        let (Some(old), Some(sel)) = (&self.keys, &self.proposal) else {
            return Err(Failure::Local(LocalError::NoPolicy));
        };
        let new = next_keys(
            provider,
            sel,
            old,
            shared,
            (ni, nr),
            (self.spi_i, self.spi_r),
            self.initiator,
        )
        .map_err(|e| derivation("IKE SA", e))?;
        self.keys = Some(new);
        Ok(())
    }
}

/// The IKE SA keys after additional key exchange n with shared secret SK(n) (RFC 9370 §2.2.2):
/// the rekey formula of RFC 7296 §2.18 over the previous SK_d, with the IKE_SA_INIT nonces and
/// the unchanged SPIs.
//= https://www.rfc-editor.org/rfc/rfc9370#section-2.2.2
//# SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
//# {SK_d(n) | SK_ai(n) | SK_ar(n) | SK_ei(n) | SK_er(n) | SK_pi(n) | SK_pr(n)}
//#                = prf+ (SKEYSEED(n), Ni | Nr | SPIi | SPIr)
fn next_keys(
    provider: &Provider,
    sel: &Selected,
    old: &IkeKeys,
    shared: &Secret,
    (ni, nr): (&[u8], &[u8]),
    (spi_i, spi_r): (IkeSpi, IkeSpi),
    initiator: bool,
) -> Result<IkeKeys, ferrosec_crypto::Error> {
    IkeKeys::derive_rekey(provider, sel, old, shared, ni, nr, spi_i, spi_r, initiator)
}

impl Core {
    /// Initiator, after IKE_SA_INIT or an IKE_INTERMEDIATE exchange: the next additional key
    /// exchange, or IKE_AUTH when none is left.
    pub(super) fn after_init(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        transcript: InitTranscript,
    ) -> Keep {
        let Some(group) = sa.next_addke(transcript.inter.done) else {
            return self.send_auth_request(now, sa, transcript);
        };
        let name = self.peers[&sa.peer].name.clone();
        let kex = match self
            .provider
            .key_exchange(group.0)
            .and_then(|k| k.start(&mut *self.rng))
        {
            Ok(k) => k,
            Err(why) => {
                let f = Failure::Crypto(CryptoFailure::KeyExchange {
                    group: group.0,
                    why,
                });
                self.failed_in(ExchangeType::IKE_INTERMEDIATE, Some(sa), name, false, f);
                return Keep::No;
            }
        };
        //= https://www.rfc-editor.org/rfc/rfc9370#section-2.2.2
        //# HDR, SK {KEi(n)}  -->
        let inner = [Payload::new(PayloadBody::Ke(KeyExchange {
            group,
            data: kex.public_key(),
        }))];
        let id = sa.requests.next_id();
        let header = sa.header(ExchangeType::IKE_INTERMEDIATE, id, false);
        let Some(keys) = &sa.keys else {
            return Keep::No;
        };
        let Some(auth_i) = int_auth_of(keys, true, &transcript.inter.auth_i, &header, &inner)
        else {
            return Keep::No;
        };
        let Ok(msgs) = sa.protect(&mut *self.rng, &self.config, header, &inner) else {
            return Keep::No;
        };
        for m in &msgs {
            self.send(sa.local, sa.remote, m);
        }
        sa.requests.start(now, msgs, self.config.retransmit);
        sa.state = State::IntSent(Box::new(IntSent {
            transcript,
            kex,
            auth_i,
        }));
        Keep::Yes
    }

    /// Initiator: the IKE_INTERMEDIATE response (authentic, reassembled), with its plaintext
    /// for the IntAuth chain.
    pub(super) fn handle_intermediate_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        first: PayloadType,
        plain: &[u8],
        inner: &[Payload<'_>],
    ) -> Keep {
        if !matches!(sa.state, State::IntSent(_)) || !sa.requests.handle_response(header.message_id)
        {
            return Keep::Yes;
        }
        sa.liveness.on_receive(now);
        sa.peer_seen = true;
        let name = self.peers[&sa.peer].name.clone();
        let State::IntSent(st) = std::mem::replace(&mut sa.state, State::Established) else {
            return Keep::No;
        };
        let IntSent {
            mut transcript,
            kex,
            auth_i,
        } = *st;
        let fail = |this: &mut Self, sa: &IkeSa, f: Failure| {
            this.failed_in(
                ExchangeType::IKE_INTERMEDIATE,
                Some(sa),
                name.clone(),
                false,
                f,
            );
            Keep::No
        };
        let Some(ke) = ke_payload(inner) else {
            let f = match first_error_notify(inner) {
                Some(notify) => Failure::PeerRefused { notify },
                None => Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_INTERMEDIATE.into(),
                    response: true,
                    what: Malformed::Missing("KE"),
                },
            };
            return fail(self, sa, f);
        };
        if ke.group.0 != kex.group() {
            let f = Failure::PeerMisbehaved {
                exchange: ExchangeType::IKE_INTERMEDIATE.into(),
                response: true,
                what: Malformed::KeGroup,
            };
            return fail(self, sa, f);
        }
        let shared = match kex.complete(ke.data) {
            Ok(s) => s,
            Err(why) => return fail(self, sa, peer_kex(kex.group(), why)),
        };
        let Some(keys) = &sa.keys else {
            return Keep::No;
        };
        let auth_r = int_auth(keys, false, &transcript.inter.auth_r, header, first, plain);
        if let Err(f) = sa.update_keys(&self.provider, &shared, &transcript.ni, &transcript.nr) {
            return fail(self, sa, f);
        }
        transcript.inter.auth_i = auth_i;
        transcript.inter.auth_r = auth_r;
        transcript.inter.done += 1;
        self.after_init(now, sa, transcript)
    }

    /// Responder: an IKE_INTERMEDIATE request on a half-open SA (authentic, reassembled).
    pub(super) fn handle_intermediate_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        header: &Header,
        first: PayloadType,
        plain: &[u8],
        inner: &[Payload<'_>],
    ) -> Keep {
        let State::HalfOpen { transcript, .. } = &sa.state else {
            return Keep::Yes;
        };
        let done = transcript.inter.done;
        let Some(group) = sa.next_addke(done) else {
            // No additional key exchange is owed: nothing else uses IKE_INTERMEDIATE here.
            return Keep::Yes;
        };
        sa.liveness.on_receive(now);
        let name = self.peers[&sa.peer].name.clone();
        let refuse = |this: &mut Self, sa: &mut IkeSa, f: Failure| {
            this.respond(
                sa,
                header,
                &[Payload::new(PayloadBody::Notify(Notify::new(
                    NotifyType::INVALID_SYNTAX,
                    &[],
                )))],
            );
            this.failed_in(
                ExchangeType::IKE_INTERMEDIATE,
                Some(sa),
                name.clone(),
                false,
                f,
            );
            Keep::No
        };
        //= https://www.rfc-editor.org/rfc/rfc9370#section-2.2.2
        //# the responder MUST respond with the INVALID_SYNTAX notification
        let ke = match ke_payload(inner) {
            Some(ke) if ke.group == group => ke,
            Some(_) => {
                let f = Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_INTERMEDIATE.into(),
                    response: false,
                    what: Malformed::KeGroup,
                };
                return refuse(self, sa, f);
            }
            None => {
                let f = Failure::PeerMisbehaved {
                    exchange: ExchangeType::IKE_INTERMEDIATE.into(),
                    response: false,
                    what: Malformed::Missing("KE"),
                };
                return refuse(self, sa, f);
            }
        };
        let kx = match self
            .provider
            .key_exchange(group.0)
            .and_then(|k| k.respond(&mut *self.rng, ke.data))
        {
            Ok(kx) => kx,
            Err(why) => return refuse(self, sa, peer_kex(group.0, why)),
        };
        let State::HalfOpen { transcript, .. } = &sa.state else {
            return Keep::Yes;
        };
        let (Some(keys), prev_i, prev_r) = (
            &sa.keys,
            transcript.inter.auth_i.clone(),
            transcript.inter.auth_r.clone(),
        ) else {
            return Keep::No;
        };
        let (ni, nr) = (transcript.ni.clone(), transcript.nr.clone());
        let auth_i = int_auth(keys, true, &prev_i, header, first, plain);
        //= https://www.rfc-editor.org/rfc/rfc9370#section-2.2.2
        //# <--  HDR, SK {KEr(n)}
        let out = [Payload::new(PayloadBody::Ke(KeyExchange {
            group,
            data: &kx.public,
        }))];
        let resp_header = sa.header(ExchangeType::IKE_INTERMEDIATE, header.message_id, true);
        let Some(auth_r) = int_auth_of(keys, false, &prev_r, &resp_header, &out) else {
            return Keep::No;
        };
        // Answered (and cached for retransmissions) under the keys the request came with;
        // the next message uses the updated ones.
        self.respond(sa, header, &out);
        if let Err(f) = sa.update_keys(&self.provider, &kx.shared, &ni, &nr) {
            self.failed_in(ExchangeType::IKE_INTERMEDIATE, Some(sa), name, false, f);
            return Keep::No;
        }
        if let State::HalfOpen { transcript, .. } = &mut sa.state {
            transcript.inter.auth_i = auth_i;
            transcript.inter.auth_r = auth_r;
            transcript.inter.done += 1;
        }
        Keep::Yes
    }
}

/// Whether any of our IKE proposals names an additional key exchange other than NONE.
pub(super) fn offers_addke(ps: &[Proposal]) -> bool {
    ps.iter().any(|p| {
        p.transforms
            .iter()
            .any(|t| proposal::addke_slot(t.ty).is_some() && t.id != DhGroup::NONE.0)
    })
}

#[cfg(test)]
mod tests {
    use ferrosec_wire::ikev2::{EncrId, PrfId};

    use super::*;
    use crate::v2::tests::{hmac, prf_plus};

    fn selected() -> Selected {
        let mut addke = [DhGroup::NONE; 7];
        addke[0] = DhGroup::ML_KEM_768;
        Selected {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: Vec::new(),
            encr: Some((EncrId::AES_GCM_16, Some(256))),
            prf: Some(PrfId::HMAC_SHA2_256),
            integ: None,
            ke: Some(DhGroup::CURVE25519),
            addke,
            esn: None,
        }
    }

    /// Known answer for the RFC 9370 §2.2.2 key update, computed here from the formulas with
    /// fixed inputs: swapping SK(n) and the nonces, using SKEYSEED(0) instead of SK_d(0),
    /// leaving out the SPIs or changing the key order fails it.
    #[test]
    fn key_update_after_an_additional_key_exchange_matches_the_rfc_9370_formulas() {
        let p = Provider::default();
        let sel = selected();
        let (ni, nr) = ([0x11u8; 32], [0x22u8; 32]);
        let (spi_i, spi_r) = (IkeSpi(0x0102_0304_0506_0708), IkeSpi(0x1112_1314_1516_1718));
        let g_ir = Secret::from_slice(&[0x33; 32]);
        let sk1 = Secret::from_slice(&[0x44; 32]);
        let old = IkeKeys::derive(&p, &sel, &g_ir, &ni, &nr, spi_i, spi_r, true).unwrap();
        let s = [
            &ni[..],
            &nr[..],
            &spi_i.0.to_be_bytes(),
            &spi_r.0.to_be_bytes(),
        ]
        .concat();
        // IKE_SA_INIT: SKEYSEED = prf(Ni | Nr, g^ir); AES-GCM-256 keys are 36 bytes with salt.
        let seed0 = hmac(&[&ni[..], &nr[..]].concat(), &[g_ir.expose()]);
        let km0 = prf_plus(&seed0, &s, 32 + 36 + 36 + 32 + 32);
        assert_eq!(old.sk_d.expose(), &km0[..32]);
        // Additional key exchange 1.
        let new = next_keys(&p, &sel, &old, &sk1, (&ni, &nr), (spi_i, spi_r), true).unwrap();
        let seed1 = hmac(&km0[..32], &[sk1.expose(), &ni, &nr]);
        let km1 = prf_plus(&seed1, &s, 32 + 36 + 36 + 32 + 32);
        assert_eq!(new.sk_d.expose(), &km1[..32], "SK_d(1)");
        assert_eq!(new.sk_pi(), &km1[104..136], "SK_pi(1)");
        assert_eq!(new.sk_pr(), &km1[136..168], "SK_pr(1)");
        assert_eq!(
            hex(&km1[..8]),
            hex(&new.sk_d.expose()[..8]),
            "the same SPIs and nonces"
        );
        // Both sides get the same keys; the responder's view differs only in direction.
        let resp_old = IkeKeys::derive(&p, &sel, &g_ir, &ni, &nr, spi_i, spi_r, false).unwrap();
        let resp = next_keys(&p, &sel, &resp_old, &sk1, (&ni, &nr), (spi_i, spi_r), false).unwrap();
        assert_eq!(resp.sk_d, new.sk_d);
        assert_eq!(resp.sk_pi(), new.sk_pi());
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// RFC 9242 §3.1: the IntAuth chain over a fixed IKE_INTERMEDIATE request and response,
    /// computed here from the octets (A = IKE header with Next Payload SK and the Length of
    /// the unencrypted form, the SK payload header; P = the inner payloads), and the tail of
    /// IKE_AUTH's signed octets: IntAuth_iN | IntAuth_rN | IKE_AUTH message ID.
    #[test]
    fn int_auth_chain_and_signed_tail_match_rfc_9242() {
        let p = Provider::default();
        let sel = selected();
        let (ni, nr) = ([0x11u8; 32], [0x22u8; 32]);
        let (spi_i, spi_r) = (IkeSpi(0x0102_0304_0506_0708), IkeSpi(0x1112_1314_1516_1718));
        let keys = IkeKeys::derive(
            &p,
            &sel,
            &Secret::from_slice(&[0x33; 32]),
            &ni,
            &nr,
            spi_i,
            spi_r,
            true,
        )
        .unwrap();
        let header = Header {
            initiator_spi: spi_i,
            responder_spi: spi_r,
            version: Version::IKEV2,
            exchange_type: ExchangeType::IKE_INTERMEDIATE,
            flags: Flags::new(true, false),
            message_id: MessageId(1),
        };
        let data = [0x5au8; 1184];
        let inner = [Payload::new(PayloadBody::Ke(KeyExchange {
            group: DhGroup::ML_KEM_768,
            data: &data,
        }))];
        let got = int_auth_of(&keys, true, &[], &header, &inner).unwrap();
        // P: KE payload, generic header (next 0, length 8 + 1184), group 36, reserved.
        let mut plain = vec![0u8, 0, 0x04, 0xa8, 0, 36, 0, 0];
        plain.extend_from_slice(&data);
        let mut a = Vec::new();
        a.extend_from_slice(&spi_i.0.to_be_bytes());
        a.extend_from_slice(&spi_r.0.to_be_bytes());
        a.extend_from_slice(&[46, 0x20, 43, 0x08, 0, 0, 0, 1]);
        a.extend_from_slice(&u32::try_from(28 + 4 + plain.len()).unwrap().to_be_bytes());
        a.extend_from_slice(&[34, 0]);
        a.extend_from_slice(&u16::try_from(4 + plain.len()).unwrap().to_be_bytes());
        let want = hmac(keys.sk_pi(), &[&a, &plain]);
        assert_eq!(got, want, "IntAuth_i1 = prf(SK_pi, A | P)");
        // The next link chains the previous one first, and the responder's uses SK_pr.
        let got2 = int_auth(&keys, false, &got, &header, PayloadType::KE, &plain);
        assert_eq!(got2, hmac(keys.sk_pr(), &[&got, &a, &plain]));
        let prog = Progress {
            done: 1,
            auth_i: got.clone(),
            auth_r: got2.clone(),
        };
        assert_eq!(
            prog.signed_tail(),
            [&got[..], &got2[..], &[0, 0, 0, 2]].concat()
        );
        assert!(Progress::default().signed_tail().is_empty());
    }
}
