//! Phase 2, quick mode (RFC 2409 §5.5), both roles:
//!
//! ```text
//!   I: HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]
//!   R: HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr]
//!   I: HDR*, HASH(3)
//! HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ])
//! HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ])
//! HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
//! ```
//!
//! A policy's proxy ID travels as IDci/IDcr; the responder takes the policy whose proxy ID is
//! the mirror image of the peer's, else the first that contains it, and explains a mismatch
//! with both sides' values.

use std::time::Duration;

use ferrosec_crypto::{Secret, ct_eq};
use ferrosec_wire::Spi;
use ferrosec_wire::ikev2::ProtocolId as V2Proto;
use ferrosec_wire::isakmp::{ExchangeType, NotifyType, Payload, PayloadType, ProtocolId};

use super::payloads::{self as pl, QmTransform, RawPayload};
use super::sa::{
    Child, Commit, OUTBOUND_SWITCH_DELAY, QmState, QuickMode, Retx, Sa, one_selector, pt,
};
use super::{Ctx, HDR_LEN, Hdr, NONCE_LEN, message};
use crate::event::{ChildKeys, ChildSaInfo, CryptoFailure, Event, Exchange, Failure, IkeSaHandle};
use crate::proposal::{self, Selected};
use crate::ts::{TrafficSelector, TsSet};
use crate::v2::{PolicyId, SaLifetime};

const ESP: u8 = 3;
/// The AH protocol ID in KEYMAT (RFC 2409 §5.5: the proposal's protocol).
const AH: u8 = 2;
/// The commit bit of the ISAKMP header flags (RFC 2408 §3.1).
const COMMIT: u8 = 0x02;

fn exchange() -> Exchange {
    Exchange::V1(ExchangeType::QUICK)
}

fn qm_failed(ctx: &mut Ctx<'_>, sa: &Sa, reason: Failure) {
    ctx.out.events.push_back(Event::Failed {
        handle: Some(IkeSaHandle(sa.our_cookie())),
        peer: sa.cfg.name.clone(),
        exchange: exchange(),
        ike_sa_survives: true,
        reason,
    });
}

fn udp(sa: &Sa) -> bool {
    sa.nat.0 || sa.nat.1
}

/// Initiator: starts quick mode for `policy` (a rekey of the pair `rekey_of` if set).
pub(crate) fn initiate(ctx: &mut Ctx<'_>, sa: &mut Sa, policy: PolicyId, rekey_of: Option<Spi>) {
    let cfg = std::sync::Arc::clone(&sa.cfg);
    let Some(pol) = cfg.policy(policy) else {
        return;
    };
    let (Some(local_ts), Some(remote_ts)) =
        (one_selector(&pol.ts.local), one_selector(&pol.ts.remote))
    else {
        return;
    };
    let mut mid = ctx.random_id();
    while sa.qms.iter().any(|q| q.mid == mid) {
        mid = ctx.random_id();
    }
    let spi_in = Spi(ctx.random_id());
    let ni = ctx.random(NONCE_LEN);
    let life = pol.lifetime.map(|l| l.lifetime.as_secs());
    let life_kb = pol.lifesize.map(|b| b.div_ceil(1024));
    let offered = pl::qm_offer(&pol.proposals, life, life_kb, udp(sa));
    if offered.is_empty() {
        qm_failed(
            ctx,
            sa,
            Failure::NoIkev1Proposal {
                policy: pol.name().to_string(),
            },
        );
        return;
    }
    if offered.iter().all(|t| t.ah) && udp(sa) {
        qm_failed(ctx, sa, Failure::AhWithNat);
        return;
    }
    let group = offered[0].group;
    let kx = match group {
        Some(g) => match ctx
            .provider
            .key_exchange(g)
            .and_then(|k| k.start(&mut *ctx.rng))
        {
            Ok(k) => Some(k),
            Err(why) => {
                let f = CryptoFailure::KeyExchange { group: g, why };
                qm_failed(ctx, sa, Failure::Crypto(f));
                return;
            }
        },
        None => None,
    };
    let mut rest: Vec<(PayloadType, Vec<u8>)> = vec![
        (pt::SA, pl::qm_sa_body(spi_in.0, &offered, 1)),
        (pt::NONCE, ni.clone()),
    ];
    if let Some(k) = &kx {
        rest.push((pt::KE, k.public_key().to_vec()));
    }
    rest.push((pt::ID, pl::selector_body(&local_ts)));
    rest.push((pt::ID, pl::selector_body(&remote_ts)));
    let rest_b = super::phase1::chain_owned(&rest);
    let Some(h) = sa.hash_a(&[&mid.to_be_bytes(), &rest_b]) else {
        return;
    };
    let mut full = vec![(pt::HASH, h.expose().to_vec())];
    full.extend(rest);
    let plain = super::phase1::chain_owned(&full);
    let mut iv = sa.phase2_iv(mid);
    let Some(enc) = sa.encrypt(&mut iv, plain) else {
        return;
    };
    let m = message(
        sa.cky_i,
        sa.cky_r,
        ExchangeType::QUICK,
        mid,
        pt::HASH,
        true,
        &enc,
    );
    ctx.out.send(sa.local, sa.remote, &m);
    sa.qms.push(QuickMode {
        mid,
        state: QmState::I1,
        policy,
        iv,
        ni,
        nr: Vec::new(),
        spi_in,
        spi_out: Spi(0),
        kx,
        g_qm: None,
        offered,
        chosen: None,
        local_ts,
        remote_ts,
        rekey_of,
        retx: Some(Retx::new(m, ctx.now, ctx.retransmit)),
        request_digest: Vec::new(),
        commit: false,
    });
}

/// The payloads of a decrypted quick-mode message, and the bytes HASH covers.
struct Got<'a> {
    hash: &'a [u8],
    /// Everything after the HASH payload, without padding.
    rest: &'a [u8],
    sa: Option<&'a [u8]>,
    nonce: Option<&'a [u8]>,
    ke: Option<&'a [u8]>,
    ids: Vec<&'a [u8]>,
    /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1): the responder's shorter lifetimes, (seconds,
    /// kilobytes).
    responder_life: Option<(Option<u64>, Option<u64>)>,
    /// A CONNECTED notify (quick-mode message 4 of the commit bit).
    connected: bool,
}

fn collect<'a>(first: PayloadType, plain: &'a [u8]) -> Option<Got<'a>> {
    let ps: Vec<RawPayload<'a>> = pl::walk(first, plain)?;
    let h = ps.first().filter(|p| p.ty == PayloadType::HASH)?;
    let used: usize = ps.iter().map(|p| p.whole.len()).sum();
    let rest = plain.get(h.whole.len()..used)?;
    let mut g = Got {
        hash: h.body,
        rest,
        sa: None,
        nonce: None,
        ke: None,
        ids: Vec::new(),
        responder_life: None,
        connected: false,
    };
    for p in &ps[1..] {
        match p.ty {
            PayloadType::SA => g.sa = g.sa.or(Some(p.body)),
            PayloadType::NONCE => g.nonce = g.nonce.or(Some(p.body)),
            PayloadType::KE => g.ke = g.ke.or(Some(p.body)),
            PayloadType::ID => g.ids.push(p.body),
            PayloadType::NOTIFICATION => {
                if let Ok(Payload::Notification(n)) =
                    Payload::parse(PayloadType::NOTIFICATION, p.body)
                {
                    if n.ty == NotifyType::RESPONDER_LIFETIME {
                        g.responder_life = Some(pl::attr_lifetimes(n.data));
                    }
                    g.connected |= n.ty == NotifyType::CONNECTED;
                }
            }
            _ => {}
        }
    }
    Some(g)
}

/// A quick-mode message.
pub(crate) fn handle(ctx: &mut Ctx<'_>, sa: &mut Sa, hdr: &Hdr, data: &[u8]) {
    if sa.state != super::sa::P1State::Established || !hdr.encrypted() || hdr.mid == 0 {
        return;
    }
    let body = &data[HDR_LEN..];
    if let Some(i) = sa.qms.iter().position(|q| q.mid == hdr.mid) {
        let q = &sa.qms[i];
        match q.state {
            QmState::R2 => {
                if super::digest(data) == q.request_digest {
                    if let Some(r) = &q.retx {
                        ctx.out.send(sa.local, sa.remote, &r.data);
                    }
                    return;
                }
                let Ok((plain, iv4)) = sa.decrypt(&q.iv, body) else {
                    return;
                };
                let Some(g) = collect(hdr.next, &plain) else {
                    return;
                };
                let q = sa.qms.remove(i);
                let expect = sa.hash_a(&[&[0], &hdr.mid.to_be_bytes(), &q.ni, &q.nr]);
                if !expect.is_some_and(|e| ct_eq(e.expose(), g.hash)) {
                    sa.qms.push(q);
                    return;
                }
                let (commit, spi, ah) = (q.commit, q.spi_in, q.chosen.is_some_and(|c| c.ah));
                record(ctx, sa, q, false, None);
                if commit {
                    send_connected(ctx, sa, hdr.mid, iv4, spi, ah);
                }
            }
            QmState::I1 => {
                let Ok((plain, next_iv)) = sa.decrypt(&q.iv, body) else {
                    return;
                };
                let Some(g) = collect(hdr.next, &plain) else {
                    return;
                };
                let Some(nr) = g.nonce else {
                    return;
                };
                let expect = sa.hash_a(&[&hdr.mid.to_be_bytes(), &q.ni, g.rest]);
                if !expect.is_some_and(|e| ct_eq(e.expose(), g.hash)) {
                    return;
                }
                let mut q = sa.qms.remove(i);
                let chosen = g.sa.and_then(|b| match Payload::parse(PayloadType::SA, b) {
                    Ok(Payload::Sa(w)) => w.proposals().first().and_then(|p| {
                        let ah = p.protocol == ProtocolId::IPSEC_AH;
                        Some((p.child_spi()?, pl::qm_transform(p.transforms.first()?, ah)?))
                    }),
                    _ => None,
                });
                let Some((spi_out, chosen)) = chosen else {
                    qm_failed(
                        ctx,
                        sa,
                        Failure::PeerMisbehaved {
                            exchange: exchange(),
                            response: true,
                            what: crate::event::Malformed::ProposalCount,
                        },
                    );
                    return;
                };
                let ok = q.offered.iter().any(|o| {
                    o.ah == chosen.ah
                        && o.encr == chosen.encr
                        && o.key_len == chosen.key_len
                        && o.auth == chosen.auth
                        && o.group == chosen.group
                });
                if !ok {
                    let offered = q.offered.iter().filter_map(pl::qm_as_proposal).collect();
                    let answer = pl::qm_as_proposal(&chosen)
                        .unwrap_or_else(|| proposal::Proposal::new(V2Proto::ESP, Vec::new()));
                    qm_failed(
                        ctx,
                        sa,
                        Failure::BadAnswer(proposal::BadAnswer { answer, offered }),
                    );
                    return;
                }
                if let (Some(k), Some(ke)) = (&q.kx, g.ke) {
                    match k.complete(ke) {
                        Ok(s) => q.g_qm = Some(s),
                        Err(why) => {
                            let group = k.group();
                            let f = CryptoFailure::PeerKeyExchange { group, why };
                            qm_failed(ctx, sa, Failure::Crypto(f));
                            return;
                        }
                    }
                } else if q.kx.is_some() {
                    qm_failed(
                        ctx,
                        sa,
                        Failure::PeerMisbehaved {
                            exchange: exchange(),
                            response: true,
                            what: crate::event::Malformed::Missing("the KE payload of PFS"),
                        },
                    );
                    return;
                }
                q.nr = nr.to_vec();
                q.spi_out = spi_out;
                // Our lifetimes, unless the peer's answer or its RESPONDER-LIFETIME is
                // shorter.
                let mut chosen = chosen;
                let ours = q
                    .offered
                    .first()
                    .map_or((None, None), |o| (o.life_secs, o.life_kb));
                let theirs = g
                    .responder_life
                    .unwrap_or((chosen.life_secs, chosen.life_kb));
                chosen.life_secs = shorter(ours.0, theirs.0);
                chosen.life_kb = shorter(ours.1, theirs.1);
                q.chosen = Some(chosen);
                q.iv = next_iv;
                let Some(h3) = sa.hash_a(&[&[0], &hdr.mid.to_be_bytes(), &q.ni, &q.nr]) else {
                    return;
                };
                let plain = pl::chain(&[(pt::HASH, h3.expose())]);
                let mut iv = q.iv.clone();
                let Some(enc) = sa.encrypt(&mut iv, plain) else {
                    return;
                };
                let m = message(
                    sa.cky_i,
                    sa.cky_r,
                    ExchangeType::QUICK,
                    hdr.mid,
                    pt::HASH,
                    true,
                    &enc,
                );
                ctx.out.send(sa.local, sa.remote, &m);
                let now = ctx.now;
                sa.qm_done.retain(|(_, _, until)| *until > now);
                if sa.qm_done.len() >= 16 {
                    sa.qm_done.remove(0);
                }
                sa.qm_done.push((hdr.mid, m, now + ctx.retransmit.total()));
                // RFC 2408 §3.1: the responder set the commit bit; we wait for its CONNECTED.
                let commit = (hdr.flags & COMMIT != 0).then(|| Commit {
                    mid: hdr.mid,
                    iv,
                    until: now + ctx.retransmit.total(),
                    old_expire: None,
                });
                install(ctx, sa, q, true, commit);
            }
        }
        return;
    }
    if connected(ctx, sa, hdr, body) {
        return;
    }
    if let Some((_, m, _)) = sa.qm_done.iter().find(|(mid, _, _)| *mid == hdr.mid) {
        // Message 2 again: our HASH(3) was lost.
        let m = m.clone();
        ctx.out.send(sa.local, sa.remote, &m);
        return;
    }
    if !sa.note_mid(hdr.mid) {
        return;
    }
    respond(ctx, sa, hdr, data);
}

fn respond(ctx: &mut Ctx<'_>, sa: &mut Sa, hdr: &Hdr, data: &[u8]) {
    let iv = sa.phase2_iv(hdr.mid);
    let Ok((plain, next_iv)) = sa.decrypt(&iv, &data[HDR_LEN..]) else {
        return;
    };
    let Some(g) = collect(hdr.next, &plain) else {
        return;
    };
    let expect = sa.hash_a(&[&hdr.mid.to_be_bytes(), g.rest]);
    if !expect.is_some_and(|e| ct_eq(e.expose(), g.hash)) {
        return;
    }
    let (Some(sa_b), Some(ni)) = (g.sa, g.nonce) else {
        return;
    };
    // The proxy IDs: IDci is the peer's side, IDcr ours; absent, the phase-1 addresses.
    let sel = |b: &[u8]| match Payload::parse(PayloadType::ID, b) {
        Ok(Payload::Id(id)) => pl::selector_of(&id),
        _ => None,
    };
    let (peer_side, our_side) = match g.ids.as_slice() {
        [ci, cr] => match (sel(ci), sel(cr)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                qm_failed(
                    ctx,
                    sa,
                    Failure::PeerMisbehaved {
                        exchange: exchange(),
                        response: false,
                        what: crate::event::Malformed::Missing(
                            "proxy IDs (IDci/IDcr) of an address type",
                        ),
                    },
                );
                return;
            }
        },
        _ => (
            TrafficSelector::from_addrs(crate::ts::AddrRange::host(sa.remote.ip())),
            TrafficSelector::from_addrs(crate::ts::AddrRange::host(sa.local.ip())),
        ),
    };
    let cfg = std::sync::Arc::clone(&sa.cfg);
    let exact = cfg.policies.iter().find(|p| {
        p.ts.remote.iter().any(|r| *r == peer_side) && p.ts.local.iter().any(|l| *l == our_side)
    });
    let contains = || {
        cfg.policies.iter().find(|p| {
            p.ts.remote.iter().any(|r| r.contains(&peer_side))
                && p.ts.local.iter().any(|l| l.contains(&our_side))
        })
    };
    let Some(pol) = exact.or_else(contains) else {
        qm_failed(
            ctx,
            sa,
            Failure::ProxyIdMismatch {
                peer_local: peer_side,
                peer_remote: our_side,
                ours: cfg
                    .policies
                    .iter()
                    .map(|p| (p.name().to_owned(), p.ts.local.clone(), p.ts.remote.clone()))
                    .collect(),
            },
        );
        send_error(ctx, sa, NotifyType::INVALID_ID_INFORMATION);
        return;
    };
    // The proposals.
    let Ok(Payload::Sa(wire)) = Payload::parse(PayloadType::SA, sa_b) else {
        return;
    };
    let props: Vec<_> = wire
        .proposals()
        .iter()
        .filter(|p| matches!(p.protocol, ProtocolId::IPSEC_ESP | ProtocolId::IPSEC_AH))
        .collect();
    if props.is_empty() {
        qm_failed(
            ctx,
            sa,
            Failure::PeerMisbehaved {
                exchange: exchange(),
                response: false,
                what: crate::event::Malformed::Missing("an ESP or AH proposal"),
            },
        );
        send_error(ctx, sa, NotifyType::NO_PROPOSAL_CHOSEN);
        return;
    }
    // Every transform of every proposal, numbered in order (transform numbers restart in
    // each proposal), with the proposal's number and the peer's SPI.
    let mut offered = Vec::new();
    let mut wire_ts: Vec<(QmTransform, u8, Spi)> = Vec::new();
    for prop in props {
        let Some(spi) = prop.child_spi() else {
            continue;
        };
        let ah = prop.protocol == ProtocolId::IPSEC_AH;
        if ah && udp(sa) {
            // AH cannot cross the NAT (RFC 3947 §3: NAT-T is for ESP).
            continue;
        }
        for t in &prop.transforms {
            if pl::unknown_qm_attr(t) {
                continue;
            }
            if let Some(q) = pl::qm_transform(t, ah)
                && let Some(p) = pl::qm_as_proposal(&q)
                && let Ok(n) = u8::try_from(offered.len() + 1)
            {
                offered.push((n, p));
                wire_ts.push((q, prop.number, spi));
            }
        }
    }
    let sel = match proposal::select(&offered, &pol.proposals, Default::default()) {
        Ok(s) => s,
        Err(error) => {
            qm_failed(
                ctx,
                sa,
                Failure::ChildNoProposalChosen {
                    policy: pol.name().to_owned(),
                    error,
                    also: Vec::new(),
                },
            );
            send_error(ctx, sa, NotifyType::NO_PROPOSAL_CHOSEN);
            return;
        }
    };
    let Some((chosen, prop_num, spi_out)) = chosen_of(&offered, &wire_ts, &sel) else {
        return;
    };
    // Lifetimes (RFC 2407 §4.5.4): we answer with the peer's, take the shorter of both sides,
    // and tell the peer ours with RESPONDER-LIFETIME when ours is shorter (strongSwan and
    // Cisco do the same). A side that names none has none.
    let our_life = pol.lifetime.map(|l| l.lifetime.as_secs());
    let our_kb = pol.lifesize.map(|b| b.div_ceil(1024));
    let life = shorter(our_life, chosen.life_secs);
    let life_kb = shorter(our_kb, chosen.life_kb);
    let mut answer = chosen;
    answer.life_secs = chosen.life_secs.or(our_life);
    answer.life_kb = chosen.life_kb.or(our_kb);
    let tell = (life != answer.life_secs || life_kb != answer.life_kb)
        .then(|| responder_lifetime(chosen.ah, spi_out, life, life_kb));
    let (kx_pub, g_qm) = match chosen.group {
        Some(group) => {
            let Some(ke) = g.ke else {
                return;
            };
            match ctx
                .provider
                .key_exchange(group)
                .and_then(|k| k.respond(&mut *ctx.rng, ke))
            {
                Ok(r) => (Some(r.public), Some(r.shared)),
                Err(why) => {
                    let f = CryptoFailure::PeerKeyExchange { group, why };
                    qm_failed(ctx, sa, Failure::Crypto(f));
                    return;
                }
            }
        }
        None => (None, None),
    };
    let spi_in = Spi(ctx.random_id());
    let nr = ctx.random(NONCE_LEN);
    let mut rest: Vec<(PayloadType, Vec<u8>)> = vec![
        (pt::SA, pl::qm_sa_body(spi_in.0, &[answer], prop_num)),
        (pt::NONCE, nr.clone()),
    ];
    if let Some(k) = &kx_pub {
        rest.push((pt::KE, k.clone()));
    }
    for id in &g.ids {
        rest.push((pt::ID, id.to_vec()));
    }
    if let Some(n) = tell {
        rest.push((PayloadType::NOTIFICATION, n));
    }
    let rest_b = super::phase1::chain_owned(&rest);
    let Some(h2) = sa.hash_a(&[&hdr.mid.to_be_bytes(), ni, &rest_b]) else {
        return;
    };
    let mut full = vec![(pt::HASH, h2.expose().to_vec())];
    full.extend(rest);
    let plain = super::phase1::chain_owned(&full);
    let mut iv = next_iv;
    let Some(enc) = sa.encrypt(&mut iv, plain) else {
        return;
    };
    let m = message(
        sa.cky_i,
        sa.cky_r,
        ExchangeType::QUICK,
        hdr.mid,
        pt::HASH,
        true,
        &enc,
    );
    let mut m = m;
    if ctx.commit_bit {
        m[19] |= COMMIT;
    }
    let mut chosen = chosen;
    chosen.life_secs = life;
    chosen.life_kb = life_kb;
    let q = QuickMode {
        mid: hdr.mid,
        state: QmState::R2,
        policy: pol.id(),
        iv,
        ni: ni.to_vec(),
        nr,
        spi_in,
        spi_out,
        kx: None,
        g_qm,
        offered: Vec::new(),
        chosen: Some(chosen),
        local_ts: our_side,
        remote_ts: peer_side,
        rekey_of: None,
        // Retransmitted until HASH(3) comes (as strongSwan does: without it the initiator
        // would send into a pair we never installed), and sent again for a retransmitted
        // message 1.
        retx: Some(Retx::new(m.clone(), ctx.now, ctx.retransmit)),
        request_digest: super::digest(data),
        commit: ctx.commit_bit,
    };
    // Our inbound SA goes in before message 2 leaves: the initiator sends on the pair right
    // after HASH(3), which may reach our data plane before HASH(3) reaches us. Our outbound
    // SA waits for HASH(3) (the initiator installs the pair on message 2).
    if !announce(ctx, sa, &q, true, false) {
        return;
    }
    ctx.out.send(sa.local, sa.remote, &m);
    sa.qms.push(q);
}

fn chosen_of(
    offered: &[(u8, proposal::Proposal)],
    wire: &[(QmTransform, u8, Spi)],
    sel: &Selected,
) -> Option<(QmTransform, u8, Spi)> {
    offered
        .iter()
        .zip(wire)
        .find(|((n, p), _)| *n == sel.number && p.protocol == sel.protocol)
        .map(|(_, w)| *w)
}

/// The shorter of two lifetimes; a side without one takes the other's.
fn shorter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A RESPONDER-LIFETIME notify body (RFC 2407 §4.6.3.1) for the peer's SA `spi`: our
/// shorter lifetimes as life type/duration attribute pairs.
fn responder_lifetime(ah: bool, spi: Spi, secs: Option<u64>, kb: Option<u64>) -> Vec<u8> {
    let mut n = notify_body(ah, NotifyType::RESPONDER_LIFETIME, spi);
    n.extend(pl::lifetime_attrs(secs, kb));
    n
}

/// The body of a notify about the ESP or AH SA `spi` (RFC 2408 §3.14): DOI, protocol, SPI
/// size 4, type, SPI.
fn notify_body(ah: bool, ty: NotifyType, spi: Spi) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&pl::DOI_IPSEC.to_be_bytes());
    n.push(if ah {
        ProtocolId::IPSEC_AH.0
    } else {
        ProtocolId::IPSEC_ESP.0
    });
    n.push(4);
    n.extend_from_slice(&ty.0.to_be_bytes());
    n.extend_from_slice(&spi.0.to_be_bytes());
    n
}

/// A protected error notify about a quick mode.
fn send_error(ctx: &mut Ctx<'_>, sa: &mut Sa, ty: NotifyType) {
    super::info::send_notify(ctx, sa, ty, ProtocolId::IPSEC_ESP, &[], &[]);
}

/// The pair is up: report it (and the switch of a rekey) and remember it.
fn install(ctx: &mut Ctx<'_>, sa: &mut Sa, q: QuickMode, initiator: bool, commit: Option<Commit>) {
    if !announce(ctx, sa, &q, commit.is_some(), initiator) {
        return;
    }
    record(ctx, sa, q, initiator, commit);
}

/// Quick-mode message 4 of a quick mode whose responder set the commit bit: `HDR*, HASH(4),
/// N(CONNECTED)` with HASH(4) = prf(SKEYID_a, M-ID | N) (as HASH(1)). The pair may carry
/// outbound traffic now. `true` when the message was one.
fn connected(ctx: &mut Ctx<'_>, sa: &mut Sa, hdr: &Hdr, body: &[u8]) -> bool {
    let Some(i) = sa
        .children
        .iter()
        .position(|c| c.commit.as_ref().is_some_and(|k| k.mid == hdr.mid))
    else {
        return false;
    };
    let iv = sa.children[i]
        .commit
        .as_ref()
        .map(|k| k.iv.clone())
        .unwrap_or_default();
    let Ok((plain, _)) = sa.decrypt(&iv, body) else {
        return true;
    };
    let Some(g) = collect(hdr.next, &plain) else {
        return true;
    };
    let expect = sa.hash_a(&[&hdr.mid.to_be_bytes(), g.rest]);
    if !g.connected || !expect.is_some_and(|e| ct_eq(e.expose(), g.hash)) {
        return true;
    }
    let new = sa.children[i].inbound;
    commit_done(ctx, sa, new);
    true
}

/// Quick-mode message 4 (we set the commit bit as responder): `HDR*, HASH(4), N(CONNECTED)`
/// for our SA `spi`, encrypted with the IV that follows HASH(3).
fn send_connected(ctx: &mut Ctx<'_>, sa: &mut Sa, mid: u32, iv: Vec<u8>, spi: Spi, ah: bool) {
    let n = notify_body(ah, NotifyType::CONNECTED, spi);
    let rest = pl::chain(&[(PayloadType::NOTIFICATION, &n)]);
    let Some(h4) = sa.hash_a(&[&mid.to_be_bytes(), &rest]) else {
        return;
    };
    let plain = pl::chain(&[(pt::HASH, h4.expose()), (PayloadType::NOTIFICATION, &n)]);
    let mut iv = iv;
    let Some(enc) = sa.encrypt(&mut iv, plain) else {
        return;
    };
    let m = message(
        sa.cky_i,
        sa.cky_r,
        ExchangeType::QUICK,
        mid,
        pt::HASH,
        true,
        &enc,
    );
    ctx.out.send(sa.local, sa.remote, &m);
}

/// CONNECTED came for the pair with inbound SPI `new`: its outbound SA carries traffic now
/// (the switch of a rekey, or the first pair's outbound SA).
pub(crate) fn commit_done(ctx: &mut Ctx<'_>, sa: &mut Sa, new: Spi) {
    let handle = IkeSaHandle(sa.our_cookie());
    let Some(c) = sa.children.iter_mut().find(|c| c.inbound == new) else {
        return;
    };
    if c.commit.take().is_none() {
        return;
    }
    match c.switch {
        Some((_, old)) => {
            if let Some(o) = sa.children.iter_mut().find(|c| c.inbound == old) {
                o.expire_at = Some(ctx.now + Duration::from_secs(2));
            }
            switch_outbound(ctx, handle, sa, new);
        }
        None => ctx.out.events.push_back(Event::ChildSaOutbound {
            ike_sa: handle,
            inbound_spi: new,
        }),
    }
}

/// Reports the pair to the data plane ([`Event::ChildSaUp`]); with `outbound_deferred`
/// (the responder before HASH(3)) only its inbound SA is to carry traffic yet. `false` when
/// the keys cannot be made (the failure is reported). `initiator`: we sent message 1.
fn announce(
    ctx: &mut Ctx<'_>,
    sa: &Sa,
    q: &QuickMode,
    outbound_deferred: bool,
    initiator: bool,
) -> bool {
    let Some(chosen) = q.chosen else {
        return false;
    };
    let cfg = std::sync::Arc::clone(&sa.cfg);
    let Some(pol) = cfg.policy(q.policy) else {
        return false;
    };
    // The ESP transform IDs are the IKEv2 encryption IDs (RFC 2407 §4.4.4); the
    // authentication algorithm attribute maps to an IKEv2 integrity ID.
    let integ = chosen
        .auth
        .and_then(ferrosec_crypto::ids::ikev1::auth_to_v2_integ);
    let algs = match (chosen.ah, integ) {
        (false, _) => ctx
            .provider
            .esp(u16::from(chosen.encr), chosen.key_len, integ)
            .map(|s| (Some(s.encr), s.integ)),
        (true, Some(i)) => ctx.provider.integrity(i).map(|a| (None, Some(a))),
        (true, None) => {
            qm_failed(
                ctx,
                sa,
                Failure::Local(crate::event::LocalError::AhWithoutIntegrity),
            );
            return false;
        }
    };
    let (encr, integ) = match algs {
        Ok(a) => a,
        Err(why) => {
            let f = CryptoFailure::Unsupported {
                what: "IPsec SA algorithms".into(),
                why,
            };
            qm_failed(ctx, sa, Failure::Crypto(f));
            return false;
        }
    };
    let el = encr.map_or(0, |e| e.keymat_len());
    let il = integ.map_or(0, |i| i.key_len());
    let proto = if chosen.ah { AH } else { ESP };
    let keys = |spi: Spi| -> Option<ChildKeys> {
        let k: Secret = sa.keymat(q, spi, proto, el + il)?;
        Some(ChildKeys {
            encr: k.take_prefix(0, el)?,
            integ: k.take_prefix(el, il)?,
        })
    };
    let (Some(inbound), Some(outbound)) = (keys(q.spi_in), keys(q.spi_out)) else {
        return false;
    };
    ctx.out.events.push_back(Event::ChildSaUp(ChildSaInfo {
        ike_sa: IkeSaHandle(sa.our_cookie()),
        policy: pol.name().to_owned(),
        protocol: if chosen.ah { V2Proto::AH } else { V2Proto::ESP },
        inbound_spi: q.spi_in,
        outbound_spi: q.spi_out,
        encr,
        integ,
        esn: false,
        inbound,
        outbound,
        local_ts: TsSet::single(q.local_ts),
        remote_ts: TsSet::single(q.remote_ts),
        local: sa.local,
        remote: sa.remote,
        udp_encap: udp(sa),
        outbound_deferred,
        lifesize: chosen.life_kb.map(|kb| kb.saturating_mul(1024)),
        initiator,
        key_exchanges: None,
    }));
    true
}

/// Remembers an announced pair with its lifetimes, and moves traffic from the pair it
/// replaces (or, for the responder's first pair of a policy, lets its outbound SA carry
/// traffic).
fn record(ctx: &mut Ctx<'_>, sa: &mut Sa, q: QuickMode, initiator: bool, commit: Option<Commit>) {
    let Some(chosen) = q.chosen else {
        return;
    };
    let cfg = std::sync::Arc::clone(&sa.cfg);
    let Some(pol) = cfg.policy(q.policy) else {
        return;
    };
    let handle = IkeSaHandle(sa.our_cookie());
    // Lifetimes: the initiator rekeys first (jittered soft deadline), the responder a little
    // later if the initiator does not.
    let life = chosen
        .life_secs
        .map(|s| SaLifetime::new(Duration::from_secs(s)))
        .or(pol.lifetime);
    let rekey_at = life.map(|l| {
        if initiator {
            ctx.soft(&l)
        } else {
            ctx.now + l.lifetime.saturating_sub(l.margin / 2)
        }
    });
    // The older pair of the same policy (our rekey, or the peer's): traffic moves to the new
    // one now.
    // As responder (the peer's rekey, which does not name the pair it replaces): the pair
    // our own rekey of the policy replaced, if that rekey is recent (its old pair still
    // lingers): both sides rekeyed the same pair at once (IKEv1 has no collision rule), and
    // both new pairs stay. Otherwise the policy's newest pair.
    let collided = sa
        .children
        .iter()
        .filter(|c| c.policy == q.policy)
        .filter_map(|c| c.rekey_of)
        .find(|o| sa.children.iter().any(|x| x.inbound == *o));
    let old = match q.rekey_of {
        Some(spi) => Some(spi),
        None => collided.or_else(|| {
            sa.children
                .iter()
                .filter(|c| c.policy == q.policy)
                .map(|c| c.inbound)
                .next_back()
        }),
    };
    let old = old.filter(|o| sa.children.iter().any(|c| c.inbound == *o));
    // The initiator switches after the responder has had HASH(3); the responder installs on
    // HASH(3), when the initiator has the pair already, and switches at once.
    let switch_at = if initiator {
        ctx.now + OUTBOUND_SWITCH_DELAY
    } else {
        ctx.now
    };
    let old_expire = old
        .and_then(|o| sa.children.iter().find(|c| c.inbound == o))
        .and_then(|c| c.expire_at);
    // With the commit bit, the old pair stays until CONNECTED (or the wait's end).
    let hold_until = commit.as_ref().map(|c| c.until);
    sa.children.push(Child {
        policy: q.policy,
        inbound: q.spi_in,
        outbound: q.spi_out,
        rekey_at,
        expire_at: life.map(|l| ctx.now + l.lifetime),
        rekeying: false,
        switch: old.map(|o| (switch_at, o)),
        rekey_of: if initiator { old } else { None },
        ah: chosen.ah,
        commit: commit.map(|c| Commit { old_expire, ..c }),
    });
    if old.is_none() && !initiator {
        ctx.out.events.push_back(Event::ChildSaOutbound {
            ike_sa: handle,
            inbound_spi: q.spi_in,
        });
    }
    if let Some(old) = old {
        if let Some(c) = sa.children.iter_mut().find(|c| c.inbound == old) {
            c.rekeying = true;
            // Keep the old pair a few seconds for packets in flight, then delete it (the
            // initiator of the rekey tells the peer).
            c.expire_at = Some(
                hold_until.unwrap_or(switch_at)
                    + Duration::from_secs(if initiator { 2 } else { 30 }),
            );
            c.rekey_at = None;
        }
        if !initiator {
            switch_outbound(ctx, handle, sa, q.spi_in);
        }
    }
}

/// Outbound traffic of the pair with inbound SPI `new` moves to it now, from the pair it
/// replaces ([`Event::ChildSaRekeyed`]), if that switch is still to be made.
pub(crate) fn switch_outbound(ctx: &mut Ctx<'_>, handle: IkeSaHandle, sa: &mut Sa, new: Spi) {
    let Some(c) = sa.children.iter_mut().find(|c| c.inbound == new) else {
        return;
    };
    let Some((_, old)) = c.switch.take() else {
        return;
    };
    ctx.out.events.push_back(Event::ChildSaRekeyed {
        ike_sa: handle,
        old_inbound_spi: old,
        new_inbound_spi: c.inbound,
        new_outbound_spi: c.outbound,
    });
}
