//! Informational exchanges (RFC 2409 §5.7): DELETE of phase-1 and phase-2 SAs both ways,
//! error notifies, dead peer detection (RFC 3706); and every timer of an ISAKMP SA.
//!
//! ```text
//!   HDR*, HASH(1), N/D        HASH(1) = prf(SKEYID_a, M-ID | N/D)
//! ```

use std::time::{Duration, Instant};

use ferrosec_crypto::ct_eq;
use ferrosec_wire::Spi;
use ferrosec_wire::ikev2::NotifyType as V2Notify;
use ferrosec_wire::isakmp::{ExchangeType, NotifyType, Payload, PayloadType, ProtocolId};

use super::payloads::{self as pl};
use super::sa::{P1State, QmState, Sa, pt};
use super::{Ctx, HDR_LEN, Hdr, message};
use crate::event::{DownReason, Event, Exchange, Failure, IkeSaHandle};

/// What a timer did to an SA.
pub(crate) enum TimerOutcome {
    /// Still there.
    Keep,
    /// Gone: remove it.
    Gone,
    /// Start a new phase 1 that takes over this one (a rekey).
    Rekey,
    /// Dead peer: remove it and negotiate again.
    Restart,
}

/// Sends a protected informational with one payload.
fn send_info(ctx: &mut Ctx<'_>, sa: &mut Sa, ty: PayloadType, body: &[u8]) {
    if sa.keys.is_none() {
        return;
    }
    let mid = ctx.random_id();
    let rest = pl::chain(&[(ty, body)]);
    let Some(h) = sa.hash_a(&[&mid.to_be_bytes(), &rest]) else {
        return;
    };
    let plain = pl::chain(&[(pt::HASH, h.expose()), (ty, body)]);
    let mut iv = sa.phase2_iv(mid);
    let Some(enc) = sa.encrypt(&mut iv, plain) else {
        return;
    };
    let m = message(
        sa.cky_i,
        sa.cky_r,
        ExchangeType::INFORMATIONAL,
        mid,
        pt::HASH,
        true,
        &enc,
    );
    ctx.out.send(sa.local, sa.remote, &m);
}

/// Sends a protected notify.
pub(crate) fn send_notify(
    ctx: &mut Ctx<'_>,
    sa: &mut Sa,
    ty: NotifyType,
    protocol: ProtocolId,
    spi: &[u8],
    data: &[u8],
) {
    let mut n = Vec::with_capacity(12 + spi.len() + data.len());
    n.extend_from_slice(&pl::DOI_IPSEC.to_be_bytes());
    n.push(protocol.0);
    n.push(spi.len() as u8);
    n.extend_from_slice(&ty.0.to_be_bytes());
    n.extend_from_slice(spi);
    n.extend_from_slice(data);
    send_info(ctx, sa, pt::N, &n);
}

fn cookies(sa: &Sa) -> [u8; 16] {
    let mut c = [0; 16];
    c[..8].copy_from_slice(&sa.cky_i.0.to_be_bytes());
    c[8..].copy_from_slice(&sa.cky_r.0.to_be_bytes());
    c
}

fn send_delete(ctx: &mut Ctx<'_>, sa: &mut Sa, protocol: ProtocolId, spi: &[u8]) {
    let mut d = Vec::with_capacity(12 + spi.len());
    d.extend_from_slice(&pl::DOI_IPSEC.to_be_bytes());
    d.push(protocol.0);
    d.push(spi.len() as u8);
    d.extend_from_slice(&1u16.to_be_bytes());
    d.extend_from_slice(spi);
    send_info(ctx, sa, pt::D, &d);
}

/// Tells the peer to delete the ISAKMP SA (a phase 1 we refused after it counted it up).
pub(crate) fn delete_isakmp(ctx: &mut Ctx<'_>, sa: &mut Sa) {
    let c = cookies(sa);
    send_delete(ctx, sa, ProtocolId::ISAKMP, &c);
}

/// Deletes one phase-2 pair (telling the peer); `false` if there is none with `inbound`.
pub(crate) fn delete_child(
    ctx: &mut Ctx<'_>,
    sa: &mut Sa,
    inbound: Spi,
    reason: DownReason,
) -> bool {
    let Some(i) = sa.children.iter().position(|c| c.inbound == inbound) else {
        return false;
    };
    let c = sa.children.remove(i);
    send_delete(ctx, sa, child_proto(&c), &c.inbound.0.to_be_bytes());
    ctx.out.events.push_back(Event::ChildSaDown {
        ike_sa: IkeSaHandle(sa.our_cookie()),
        inbound_spi: c.inbound,
        outbound_spi: c.outbound,
        reason,
    });
    true
}

/// The protocol a phase-2 pair's DELETE names.
fn child_proto(c: &super::sa::Child) -> ProtocolId {
    if c.ah {
        ProtocolId::IPSEC_AH
    } else {
        ProtocolId::IPSEC_ESP
    }
}

/// Everything of this SA goes down: its pairs and itself, the peer told (when we can).
pub(crate) fn delete_all(ctx: &mut Ctx<'_>, sa: &mut Sa, reason: DownReason) {
    let tell = reason == DownReason::LocalDelete;
    let handle = IkeSaHandle(sa.our_cookie());
    // Quick modes we answered whose HASH(3) has not come: their inbound SAs are installed.
    for q in std::mem::take(&mut sa.qms) {
        if q.state == QmState::R2 {
            ctx.out.events.push_back(Event::ChildSaDown {
                ike_sa: handle,
                inbound_spi: q.spi_in,
                outbound_spi: q.spi_out,
                reason: DownReason::IkeSaGone,
            });
        }
    }
    for c in std::mem::take(&mut sa.children) {
        if tell {
            send_delete(ctx, sa, child_proto(&c), &c.inbound.0.to_be_bytes());
        }
        ctx.out.events.push_back(Event::ChildSaDown {
            ike_sa: handle,
            inbound_spi: c.inbound,
            outbound_spi: c.outbound,
            reason: match reason {
                DownReason::LocalDelete | DownReason::PeerInitialContact => reason.clone(),
                _ => DownReason::IkeSaGone,
            },
        });
    }
    if tell && sa.state == P1State::Established {
        let c = cookies(sa);
        send_delete(ctx, sa, ProtocolId::ISAKMP, &c);
    }
    if sa.established_at.is_some() && !sa.replaced {
        ctx.out.events.push_back(Event::IkeSaDown {
            handle,
            peer: sa.cfg.name.clone(),
            reason,
        });
    }
}

/// An ISAKMP notify type in the IKEv2 terms of [`Failure::PeerRefused`] (the error types
/// both versions share have the same numbers).
fn as_v2(ty: NotifyType) -> V2Notify {
    match ty {
        NotifyType::NO_PROPOSAL_CHOSEN => V2Notify::NO_PROPOSAL_CHOSEN,
        NotifyType::AUTHENTICATION_FAILED => V2Notify::AUTHENTICATION_FAILED,
        NotifyType::INVALID_ID_INFORMATION => V2Notify::TS_UNACCEPTABLE,
        _ => V2Notify::INVALID_SYNTAX,
    }
}

/// An informational message. `true`: the SA is gone.
pub(crate) fn handle(ctx: &mut Ctx<'_>, sa: &mut Sa, hdr: &Hdr, data: &[u8]) -> bool {
    let body = &data[HDR_LEN..];
    if !hdr.encrypted() {
        // Unprotected: only believed during phase 1, before keys exist on both sides.
        if sa.state == P1State::Established || !sa.initiator {
            return false;
        }
        let Some(ps) = pl::walk(hdr.next, body) else {
            return false;
        };
        for p in ps {
            if let Ok(Payload::Notification(n)) = Payload::parse(p.ty, p.body) {
                let reason = if n.ty == NotifyType::NO_PROPOSAL_CHOSEN
                    && matches!(sa.state, P1State::MainI1 | P1State::AggrI1)
                {
                    super::phase1::refused(sa)
                } else if sa.state == P1State::MainI5 {
                    // An error about our message 5: it did not decrypt there.
                    Failure::AuthFailed
                } else {
                    Failure::PeerRefused {
                        notify: as_v2(n.ty),
                    }
                };
                if n.ty.0 < 8192 {
                    super::phase1::fail(ctx, sa, reason);
                    return true;
                }
            }
        }
        return false;
    }
    if sa.keys.is_none() {
        return false;
    }
    let iv = sa.phase2_iv(hdr.mid);
    let verified = (|| {
        let (plain, _) = sa.decrypt(&iv, body).ok()?;
        let ps = pl::walk(hdr.next, &plain)?;
        let h = ps.first().filter(|p| p.ty == PayloadType::HASH)?;
        let used: usize = ps.iter().map(|p| p.whole.len()).sum();
        let rest = plain.get(h.whole.len()..used)?;
        let expect = sa.hash_a(&[&hdr.mid.to_be_bytes(), rest])?;
        ct_eq(expect.expose(), h.body).then_some(())?;
        Some(plain)
    })();
    let Some(plain) = verified else {
        // We sent main mode message 5 and the peer answers with an encrypted notify our keys
        // cannot read: its keys differ from ours, so the pre-shared keys do (strongSwan says
        // PAYLOAD_MALFORMED so).
        if sa.state == P1State::MainI5 {
            super::phase1::fail(ctx, sa, Failure::AuthFailed);
            return true;
        }
        return false;
    };
    let Some(ps) = pl::walk(hdr.next, &plain) else {
        return false;
    };
    if !sa.note_mid(hdr.mid) {
        return false;
    }
    sa.dpd.last_rx = Some(ctx.now);
    for p in &ps[1..] {
        match Payload::parse(p.ty, p.body) {
            Ok(Payload::Notification(n)) => match n.ty {
                NotifyType::R_U_THERE => {
                    let spi = n.spi.to_vec();
                    let seq = n.data.to_vec();
                    send_notify(
                        ctx,
                        sa,
                        NotifyType::R_U_THERE_ACK,
                        ProtocolId::ISAKMP,
                        &spi,
                        &seq,
                    );
                }
                NotifyType::R_U_THERE_ACK => {
                    let seq = <[u8; 4]>::try_from(n.data).ok().map(u32::from_be_bytes);
                    if let Some((s, _, _)) = sa.dpd.outstanding
                        && Some(s) == seq
                    {
                        sa.dpd.outstanding = None;
                    }
                }
                ty if ty.0 < 8192 => {
                    // An error about one of our quick modes.
                    let spi = <[u8; 4]>::try_from(n.spi)
                        .ok()
                        .map(|b| Spi(u32::from_be_bytes(b)));
                    let i = sa.qms.iter().position(|q| {
                        q.state == QmState::I1 && (spi.is_none() || spi == Some(q.spi_in))
                    });
                    if let Some(i) = i {
                        let q = sa.qms.remove(i);
                        let cfg = std::sync::Arc::clone(&sa.cfg);
                        let policy = cfg.policy(q.policy).map_or("?", |p| p.name()).to_owned();
                        ctx.out.events.push_back(Event::Failed {
                            handle: Some(IkeSaHandle(sa.our_cookie())),
                            peer: sa.cfg.name.clone(),
                            exchange: Exchange::V1(ExchangeType::QUICK),
                            ike_sa_survives: true,
                            reason: Failure::ChildRefused {
                                policy,
                                notify: as_v2(ty),
                                offered: crate::proposal::describe(
                                    &q.offered
                                        .iter()
                                        .filter_map(pl::qm_as_proposal)
                                        .collect::<Vec<_>>(),
                                ),
                                tsi: crate::ts::TsSet::single(q.local_ts),
                                tsr: crate::ts::TsSet::single(q.remote_ts),
                            },
                        });
                        if let Some(old) = q.rekey_of
                            && let Some(c) = sa.children.iter_mut().find(|c| c.inbound == old)
                        {
                            c.rekeying = false;
                        }
                    }
                }
                _ => {}
            },
            Ok(Payload::Delete(d)) => {
                if d.protocol == ProtocolId::ISAKMP {
                    if sa.replaced {
                        return true;
                    }
                    delete_all(ctx, sa, DownReason::PeerDelete);
                    return true;
                }
                for spi in d.spis() {
                    let Ok(b) = <[u8; 4]>::try_from(spi) else {
                        continue;
                    };
                    let out = Spi(u32::from_be_bytes(b));
                    if let Some(i) = sa.children.iter().position(|c| c.outbound == out) {
                        // A pair waiting to take over from this one does so now.
                        let gone = sa.children[i].inbound;
                        let heir = sa
                            .children
                            .iter()
                            .find(|c| c.switch.is_some_and(|(_, o)| o == gone))
                            .map(|c| c.inbound);
                        if let Some(new) = heir {
                            super::quick::switch_outbound(
                                ctx,
                                IkeSaHandle(sa.our_cookie()),
                                sa,
                                new,
                            );
                        }
                        let Some(i) = sa.children.iter().position(|c| c.outbound == out) else {
                            continue;
                        };
                        let c = sa.children.remove(i);
                        ctx.out.events.push_back(Event::ChildSaDown {
                            ike_sa: IkeSaHandle(sa.our_cookie()),
                            inbound_spi: c.inbound,
                            outbound_spi: c.outbound,
                            reason: DownReason::PeerDelete,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    false
}

fn dpd_deadline(sa: &Sa) -> Option<Instant> {
    let cfg = sa.dpd_cfg?;
    if sa.state != P1State::Established || sa.replaced {
        return None;
    }
    match sa.dpd.outstanding {
        Some((_, at, _)) => Some(at),
        None => sa.dpd.last_rx.map(|t| t + cfg.interval),
    }
}

/// The SA's next deadline.
pub(crate) fn deadline(sa: &Sa) -> Option<Instant> {
    let mut d: Vec<Instant> = Vec::new();
    if let Some(r) = &sa.retx {
        d.push(r.next);
    }
    d.extend(
        sa.qms
            .iter()
            .filter_map(|q| q.retx.as_ref().map(|r| r.next)),
    );
    for c in &sa.children {
        d.extend(c.rekey_at.filter(|_| !c.rekeying));
        d.extend(c.expire_at);
        match &c.commit {
            Some(k) => d.push(k.until),
            None => d.extend(c.switch.map(|(t, _)| t)),
        }
    }
    d.extend(sa.rekey_at);
    d.extend(sa.expire_at);
    d.extend(dpd_deadline(sa));
    d.into_iter().min()
}

/// Runs what is due.
pub(crate) fn timeout(ctx: &mut Ctx<'_>, sa: &mut Sa) -> TimerOutcome {
    let now = ctx.now;
    // Phase-1 retransmissions.
    if let Some(r) = &mut sa.retx
        && r.next <= now
    {
        if r.sent >= ctx.retransmit.tries {
            let sent = r.sent;
            super::phase1::fail(
                ctx,
                sa,
                Failure::PeerUnreachable {
                    retransmissions: sent,
                },
            );
            return TimerOutcome::Gone;
        }
        r.sent += 1;
        r.next = now + ctx.retransmit.wait(r.sent);
        let data = r.data.clone();
        super::transmit(ctx.out, sa, &data);
    }
    if sa.expire_at.is_some_and(|t| t <= now) {
        if sa.state != P1State::Established {
            // A responder whose peer stopped half-way: say where, rather than go quietly.
            let waiting_for = match sa.state {
                P1State::MainR2 => Some("message 3 (KE, nonce)"),
                P1State::MainR4 => Some("message 5 (ID, HASH_I)"),
                P1State::AggrR2 => Some("message 3 (HASH_I)"),
                _ => None,
            };
            if let Some(step) = waiting_for {
                ctx.out.events.push_back(Event::Failed {
                    handle: None,
                    peer: sa.cfg.name.clone(),
                    exchange: super::phase1::exchange(sa),
                    ike_sa_survives: false,
                    reason: Failure::Stalled {
                        waiting_for: step,
                        from: sa.remote,
                    },
                });
            }
            return TimerOutcome::Gone;
        }
        if sa.replaced {
            let c = cookies(sa);
            send_delete(ctx, sa, ProtocolId::ISAKMP, &c);
            return TimerOutcome::Gone;
        }
        delete_all(ctx, sa, DownReason::LocalDelete);
        return TimerOutcome::Gone;
    }
    // Quick modes.
    let mut i = 0;
    while i < sa.qms.len() {
        let due = sa.qms[i].retx.as_ref().is_some_and(|r| r.next <= now);
        if !due {
            i += 1;
            continue;
        }
        let q = &mut sa.qms[i];
        let r = q.retx.as_mut().expect("due");
        if r.sent >= ctx.retransmit.tries {
            let q = sa.qms.remove(i);
            if q.state == QmState::I1 {
                ctx.out.events.push_back(Event::Failed {
                    handle: Some(IkeSaHandle(sa.our_cookie())),
                    peer: sa.cfg.name.clone(),
                    exchange: Exchange::V1(ExchangeType::QUICK),
                    ike_sa_survives: true,
                    reason: Failure::PeerUnreachable {
                        retransmissions: ctx.retransmit.tries,
                    },
                });
                if let Some(old) = q.rekey_of
                    && let Some(c) = sa.children.iter_mut().find(|c| c.inbound == old)
                {
                    c.rekeying = false;
                    c.rekey_at = None;
                }
            } else {
                // Responder: no HASH(3) ever came; the inbound SA announced with message 2
                // goes.
                ctx.out.events.push_back(Event::ChildSaDown {
                    ike_sa: IkeSaHandle(sa.our_cookie()),
                    inbound_spi: q.spi_in,
                    outbound_spi: q.spi_out,
                    reason: DownReason::PeerUnreachable,
                });
            }
            continue;
        }
        r.sent += 1;
        r.next = now + ctx.retransmit.wait(r.sent);
        let data = r.data.clone();
        ctx.out.send(sa.local, sa.remote, &data);
        i += 1;
    }
    // Outbound switches of our rekeys, then phase-2 lifetimes.
    let handle = IkeSaHandle(sa.our_cookie());
    let switches: Vec<Spi> = sa
        .children
        .iter()
        .filter(|c| c.commit.is_none() && c.switch.is_some_and(|(t, _)| t <= now))
        .map(|c| c.inbound)
        .collect();
    for new in switches {
        super::quick::switch_outbound(ctx, handle, sa, new);
    }
    // Commit bit: no CONNECTED in time. The pair goes; a pair it was to replace keeps its
    // own lifetime (and is not rekeyed again, so that a peer that never says CONNECTED does
    // not get a rekey loop).
    type Unconnected = (Spi, Option<(Instant, Spi)>, Option<Instant>);
    let unconnected: Vec<Unconnected> = sa
        .children
        .iter()
        .filter_map(|c| {
            let k = c.commit.as_ref().filter(|k| k.until <= now)?;
            Some((c.inbound, c.switch, k.old_expire))
        })
        .collect();
    for (new, switch, old_expire) in unconnected {
        if let Some((_, old)) = switch
            && let Some(o) = sa.children.iter_mut().find(|c| c.inbound == old)
        {
            o.rekeying = false;
            o.expire_at = old_expire;
        }
        let policy = sa
            .children
            .iter()
            .find(|c| c.inbound == new)
            .and_then(|c| sa.cfg.policy(c.policy))
            .map(|p| p.name().to_owned())
            .unwrap_or_default();
        ctx.out.events.push_back(Event::Failed {
            handle: Some(handle),
            peer: sa.cfg.name.clone(),
            exchange: Exchange::V1(ExchangeType::QUICK),
            ike_sa_survives: true,
            reason: Failure::NotConnected {
                policy,
                waited: ctx.retransmit.total(),
            },
        });
        delete_child(ctx, sa, new, DownReason::LocalDelete);
    }
    let expired: Vec<(Spi, bool)> = sa
        .children
        .iter()
        .filter(|c| c.expire_at.is_some_and(|t| t <= now))
        .map(|c| (c.inbound, c.rekeying))
        .collect();
    for (inbound, replaced) in expired {
        if !replaced && let Some(c) = sa.children.iter().find(|c| c.inbound == inbound) {
            ctx.out.events.push_back(Event::ChildSaExpired {
                ike_sa: handle,
                inbound_spi: c.inbound,
                outbound_spi: c.outbound,
            });
        }
        delete_child(ctx, sa, inbound, DownReason::LocalDelete);
    }
    let rekey: Vec<(crate::v2::PolicyId, Spi)> = sa
        .children
        .iter_mut()
        .filter(|c| !c.rekeying && c.rekey_at.is_some_and(|t| t <= now))
        .map(|c| {
            c.rekeying = true;
            (c.policy, c.inbound)
        })
        .collect();
    for (policy, inbound) in rekey {
        sa.pending.push((policy, Some(inbound)));
    }
    // DPD.
    if let Some(cfg) = sa.dpd_cfg
        && dpd_deadline(sa).is_some_and(|t| t <= now)
    {
        let tries = sa.dpd.outstanding.map_or(0, |(_, _, n)| n);
        if sa.dpd.outstanding.is_some() && tries >= cfg.retry.max(1) {
            // Its last try went unanswered too.
            *ctx.out.liveness_misses.entry(sa.peer).or_insert(0) += 1;
            delete_all(ctx, sa, DownReason::PeerUnreachable);
            return if sa.initiator && sa.cfg.restart_on_dead_peer {
                TimerOutcome::Restart
            } else {
                TimerOutcome::Gone
            };
        }
        if sa.dpd.outstanding.is_some() {
            // The last R-U-THERE went unanswered.
            *ctx.out.liveness_misses.entry(sa.peer).or_insert(0) += 1;
        }
        sa.dpd.seq = sa.dpd.seq.wrapping_add(1).max(1);
        let seq = sa.dpd.seq;
        sa.dpd.outstanding = Some((
            seq,
            now + cfg.interval.max(Duration::from_secs(1)),
            tries + 1,
        ));
        let c = cookies(sa);
        send_notify(
            ctx,
            sa,
            NotifyType::R_U_THERE,
            ProtocolId::ISAKMP,
            &c,
            &seq.to_be_bytes(),
        );
    }
    if sa.rekey_at.is_some_and(|t| t <= now) {
        sa.rekey_at = None;
        return TimerOutcome::Rekey;
    }
    TimerOutcome::Keep
}
