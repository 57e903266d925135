//! Phase 1 (RFC 2409 §5): main mode and aggressive mode with a pre-shared key, both roles.
//!
//! ```text
//! main mode                               aggressive mode
//!   I: HDR, SA                 (1)          I: HDR, SA, KE, Ni, IDii            (1)
//!   R: HDR, SA                 (2)          R: HDR, SA, KE, Nr, IDir, HASH_R    (2)
//!   I: HDR, KE, Ni             (3)          I: HDR*, HASH_I                     (3)
//!   R: HDR, KE, Nr             (4)
//!   I: HDR*, IDii, HASH_I      (5)
//!   R: HDR*, IDir, HASH_R      (6)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ferrosec_crypto::{Encryption, HashAlgorithm, Prf, ct_eq};
use ferrosec_wire::IkeSpi;
use ferrosec_wire::isakmp::{
    ExchangeType, NotifyType, Payload, PayloadType, ProtocolId as IsakmpProto,
};

use super::certs;
use super::payloads::{self as pl, P1Transform, RawPayload};
use super::sa::{P1Algs, P1State, Retx, Sa, pt};
use super::{Ctx, HDR_LEN, Hdr, Mode, NONCE_LEN, message};
use crate::event::{CryptoFailure, Event, Exchange, Failure, IkeSaHandle, IkeSaInfo, Malformed};
use crate::identity::Identity;
use crate::proposal::{self, OfferRefused};
use crate::v2::{CertAuth, CommandError, PeerConfig, PeerId, SaLifetime};

/// A new SA record (no message sent yet).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_sa(
    peer: PeerId,
    cfg: Arc<PeerConfig>,
    cert: Option<Arc<CertAuth>>,
    mode: Mode,
    initiator: bool,
    cky_i: IkeSpi,
    cky_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
    _now: Instant,
) -> Sa {
    // With certificates our ID defaults to our certificate's subject DN, as in IKEv2.
    let local_id = cfg
        .local_id
        .clone()
        .or_else(|| cert.as_ref().and_then(|c| c.default_id()))
        .unwrap_or_else(|| Identity::addr(local.ip()));
    // 0 (no method): a key type IKEv1 cannot sign with; said when the exchange starts.
    let auth_method = match &cert {
        None => pl::AUTH_PSK,
        Some(c) => certs::our_method(c).unwrap_or(0),
    };
    Sa {
        peer,
        cfg,
        cert,
        auth_method,
        peer_cert: None,
        peer_frag: false,
        reasm: Default::default(),
        mode,
        initiator,
        state: if initiator {
            match mode {
                Mode::Main => P1State::MainI1,
                Mode::Aggressive => P1State::AggrI1,
            }
        } else {
            match mode {
                Mode::Main => P1State::MainR2,
                Mode::Aggressive => P1State::AggrR2,
            }
        },
        cky_i,
        cky_r,
        local,
        remote,
        sa_i_b: Vec::new(),
        offered: Vec::new(),
        algs: None,
        kx: None,
        g_xi: Vec::new(),
        g_xr: Vec::new(),
        g_xy: None,
        ni: Vec::new(),
        nr: Vec::new(),
        keys: None,
        iv: Vec::new(),
        id_ours_b: pl::identity_body(&local_id),
        peer_id: None,
        retx: None,
        last_request: Vec::new(),
        last_answer: None,
        established_at: None,
        rekey_at: None,
        expire_at: None,
        replaced: false,
        first_contact: false,
        peer_initial_contact: false,
        natt: false,
        nat: (false, false),
        peer_dpd: false,
        dpd: Default::default(),
        dpd_cfg: None,
        peer_id_b: Vec::new(),
        qms: Vec::new(),
        children: Vec::new(),
        pending: Vec::new(),
        qm_done: Vec::new(),
        seen_mids: Vec::new(),
    }
}

pub(crate) fn exchange(sa: &Sa) -> Exchange {
    Exchange::V1(match sa.mode {
        Mode::Main => ExchangeType::IDENTITY_PROTECTION,
        Mode::Aggressive => ExchangeType::AGGRESSIVE,
    })
}

fn exchange_type(sa: &Sa) -> ExchangeType {
    match sa.mode {
        Mode::Main => ExchangeType::IDENTITY_PROTECTION,
        Mode::Aggressive => ExchangeType::AGGRESSIVE,
    }
}

/// Reports a failed phase 1 (the SA is dropped by the caller).
pub(crate) fn fail(ctx: &mut Ctx<'_>, sa: &Sa, reason: Failure) {
    ctx.out.events.push_back(Event::Failed {
        handle: Some(IkeSaHandle(sa.our_cookie())),
        peer: sa.cfg.name.clone(),
        exchange: exchange(sa),
        ike_sa_survives: false,
        reason,
    });
}

/// Our vendor IDs: DPD always, RFC 3947 NAT-T when the gateway allows NAT traversal (as
/// responder only when the peer sent it too).
fn vendor_ids(sa: &Sa) -> Vec<&'static [u8]> {
    let mut v: Vec<&'static [u8]> = vec![&pl::VID_DPD];
    if sa.cfg.nat_traversal && (sa.initiator || sa.natt) {
        v.push(&pl::VID_NATT);
    }
    if sa.cfg.fragmentation && (sa.initiator || sa.peer_frag) {
        v.push(&super::frag::VID);
    }
    v
}

/// NAT-D (RFC 3947 §3.2): HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash.
fn nat_d(sa: &Sa, a: SocketAddr) -> Vec<u8> {
    let ip = match a.ip() {
        std::net::IpAddr::V4(i) => i.octets().to_vec(),
        std::net::IpAddr::V6(i) => i.octets().to_vec(),
    };
    let hash = sa.algs.as_ref().map_or(HashAlgorithm::Sha1, |x| x.hash);
    hash.digest(&[
        &sa.cky_i.0.to_be_bytes(),
        &sa.cky_r.0.to_be_bytes(),
        &ip,
        &a.port().to_be_bytes(),
    ])
}

/// Our NAT-D payloads: the peer's address as we send to it, then ours.
fn our_nat_d(sa: &Sa) -> Vec<(PayloadType, Vec<u8>)> {
    if !sa.natt {
        return Vec::new();
    }
    vec![
        (pt::NATD, nat_d(sa, sa.remote)),
        (pt::NATD, nat_d(sa, sa.local)),
    ]
}

/// The peer's NAT-D payloads: the first is our address as it sent to it, the others its
/// own. A mismatch means a NAT rewrote that side (RFC 3947 §3.2).
fn check_nat_d(sa: &mut Sa, got: &[&[u8]]) {
    if !sa.natt || got.len() < 2 {
        return;
    }
    let we_behind = got[0] != nat_d(sa, sa.local).as_slice();
    let peer = nat_d(sa, sa.remote);
    let peer_behind = !got[1..].contains(&peer.as_slice());
    sa.nat = (we_behind, peer_behind);
}

/// After NAT-D shows a NAT: IKE moves to port 4500 (RFC 3947 §4), from the message after the
/// key exchange on.
fn float(sa: &mut Sa) {
    if sa.natt && (sa.nat.0 || sa.nat.1) && sa.local.port() != super::NATT_PORT {
        sa.local.set_port(super::NATT_PORT);
        sa.remote.set_port(super::NATT_PORT);
    }
}

fn send(ctx: &mut Ctx<'_>, sa: &mut Sa, first: PayloadType, body: &[u8], encrypted: bool) {
    let m = message(
        sa.cky_i,
        sa.cky_r,
        exchange_type(sa),
        0,
        first,
        encrypted,
        body,
    );
    super::transmit(ctx.out, sa, &m);
    if sa.initiator {
        sa.retx = Some(Retx::new(m, ctx.now, ctx.retransmit));
    } else {
        sa.retx = None;
        sa.last_answer = Some(m);
    }
}

fn nonce_and_ke(
    ctx: &mut Ctx<'_>,
    group: u16,
) -> Option<(Vec<u8>, Box<dyn ferrosec_crypto::ActiveKeyExchange>)> {
    let kx = ctx
        .provider
        .key_exchange(group)
        .and_then(|k| k.start(&mut *ctx.rng))
        .ok()?;
    Some((ctx.random(NONCE_LEN), kx))
}

/// Initiator: the first message.
pub(crate) fn start(
    ctx: &mut Ctx<'_>,
    sa: &mut Sa,
    lifetime: Option<SaLifetime>,
) -> Result<(), CommandError> {
    let life = lifetime.map(|l| l.lifetime.as_secs());
    if let Some(c) = &sa.cert
        && let Err(e) = certs::our_method(c)
    {
        return Err(CommandError::Config(e));
    }
    let mut offer = pl::phase1_offer(&sa.cfg.ike_proposals, life, sa.auth_method);
    if offer.is_empty() {
        return Err(CommandError::Config(
            "the IKE crypto profile has no IKEv1 proposal (IKEv1 needs a CBC cipher: aes-*-cbc \
             or 3des)"
                .into(),
        ));
    }
    if sa.mode == Mode::Aggressive {
        // One DH group: the KE payload goes in the first message.
        let g = offer[0].group;
        offer.retain(|t| t.group == g);
    }
    sa.sa_i_b = pl::phase1_sa_body(&offer);
    sa.offered = offer;
    let mut parts: Vec<(PayloadType, Vec<u8>)> = vec![(pt::SA, sa.sa_i_b.clone())];
    if sa.mode == Mode::Aggressive {
        let (ni, kx) = nonce_and_ke(ctx, sa.offered[0].group)
            .ok_or_else(|| CommandError::Config("DH group not supported".into()))?;
        sa.g_xi = kx.public_key().to_vec();
        sa.ni = ni;
        sa.kx = Some(kx);
        parts.push((pt::KE, sa.g_xi.clone()));
        parts.push((pt::NONCE, sa.ni.clone()));
        parts.push((pt::ID, sa.id_ours_b.clone()));
        parts.extend(our_crs(sa));
    }
    for v in vendor_ids(sa) {
        parts.push((pt::VID, v.to_vec()));
    }
    let body = chain_owned(&parts);
    send(ctx, sa, pt::SA, &body, false);
    Ok(())
}

/// Our CR payloads (certificates only): one per trust anchor, naming it by subject DN.
fn our_crs(sa: &Sa) -> Vec<(PayloadType, Vec<u8>)> {
    sa.cert
        .as_deref()
        .map(certs::cr_bodies)
        .unwrap_or_default()
        .into_iter()
        .map(|b| (pt::CR, b))
        .collect()
}

/// Our authentication payloads over HASH_I (`of_initiator`) or HASH_R: the HASH itself with a
/// pre-shared key; with certificates our CERTs and the SIG of the hash. `None`: it failed
/// (reported).
fn our_auth(ctx: &mut Ctx<'_>, sa: &Sa, of_initiator: bool) -> Option<Vec<(PayloadType, Vec<u8>)>> {
    let hash = sa.phase1_hash(of_initiator, &sa.id_ours_b)?;
    let Some(c) = &sa.cert else {
        return Some(vec![(pt::HASH, hash.expose().to_vec())]);
    };
    match certs::sign(c, hash.expose()) {
        Ok(sig) => {
            let mut v: Vec<(PayloadType, Vec<u8>)> = certs::cert_bodies(c)
                .into_iter()
                .map(|b| (pt::CERT, b))
                .collect();
            v.push((pt::SIG, sig));
            Some(v)
        }
        Err(f) => {
            fail(ctx, sa, f);
            None
        }
    }
}

pub(crate) fn chain_owned(parts: &[(PayloadType, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(PayloadType, &[u8])> = parts.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    pl::chain(&refs)
}

/// What a plaintext phase-1 message carries.
#[derive(Default)]
struct Got<'a> {
    sa: Option<&'a [u8]>,
    ke: Option<&'a [u8]>,
    nonce: Option<&'a [u8]>,
    id: Option<&'a [u8]>,
    hash: Option<&'a [u8]>,
    /// SIG payload (signature authentication).
    sig: Option<&'a [u8]>,
    /// CERT payloads of X.509 signature encoding: their data (the certificate's DER).
    certs: Vec<&'a [u8]>,
    vids: Vec<&'a [u8]>,
    nat_d: Vec<&'a [u8]>,
    /// An INITIAL-CONTACT notify (RFC 2407 §4.6.3.3) came with it.
    initial_contact: bool,
}

fn collect<'a>(ps: &[RawPayload<'a>]) -> Got<'a> {
    let mut g = Got::default();
    for p in ps {
        match p.ty {
            PayloadType::SA => g.sa = g.sa.or(Some(p.body)),
            PayloadType::KE => g.ke = g.ke.or(Some(p.body)),
            PayloadType::NONCE => g.nonce = g.nonce.or(Some(p.body)),
            PayloadType::ID => g.id = g.id.or(Some(p.body)),
            PayloadType::HASH => g.hash = g.hash.or(Some(p.body)),
            PayloadType::SIG => g.sig = g.sig.or(Some(p.body)),
            PayloadType::CERT => {
                if let Some((&certs::X509_SIGNATURE, der)) = p.body.split_first() {
                    g.certs.push(der);
                }
            }
            PayloadType::VENDOR_ID => g.vids.push(p.body),
            PayloadType::NAT_D | PayloadType::NAT_D_DRAFT => g.nat_d.push(p.body),
            // DOI (4), protocol, SPI size, then the type.
            PayloadType::NOTIFICATION => {
                g.initial_contact |=
                    p.body.get(6..8) == Some(&NotifyType::INITIAL_CONTACT.0.to_be_bytes()[..]);
            }
            _ => {}
        }
    }
    g
}

/// Responder: selects among the peer's phase-1 transforms; the chosen one.
fn select(ctx: &mut Ctx<'_>, sa: &mut Sa, sa_body: &[u8]) -> Option<P1Transform> {
    let Ok(Payload::Sa(wire)) = Payload::parse(PayloadType::SA, sa_body) else {
        fail(
            ctx,
            sa,
            Failure::PeerMisbehaved {
                exchange: exchange(sa),
                response: false,
                what: Malformed::Missing("a valid SA payload"),
            },
        );
        return None;
    };
    let mut offered = Vec::new();
    let mut wire_ts = Vec::new();
    // The authentication methods of the transforms left out for theirs.
    let mut other_methods: Vec<u16> = Vec::new();
    for p in wire
        .proposals()
        .iter()
        .filter(|p| p.protocol == IsakmpProto::ISAKMP)
    {
        for t in &p.transforms {
            if let Some(p1) = pl::phase1_transform(t)
                && let Some(prop) = pl::phase1_as_proposal(&p1)
            {
                if p1.auth != sa.auth_method {
                    if !other_methods.contains(&p1.auth) {
                        other_methods.push(p1.auth);
                    }
                    continue;
                }
                offered.push((t.number, prop));
                wire_ts.push((t.number, p1));
            }
        }
    }
    if offered.is_empty() && !other_methods.is_empty() {
        let ours = match &sa.cert {
            None => pl::auth_method_name(pl::AUTH_PSK),
            Some(c) => match certs::our_method(c) {
                Ok(m) => format!(
                    "{} (our certificate's key is {})",
                    pl::auth_method_name(m),
                    c.chain
                        .first()
                        .map(|x| x.key_kind().to_string())
                        .unwrap_or_default()
                ),
                Err(e) => format!("certificates, but {e}"),
            },
        };
        let offered = other_methods
            .iter()
            .map(|m| pl::auth_method_name(*m))
            .collect::<Vec<_>>()
            .join(", ");
        fail(ctx, sa, Failure::Ikev1AuthMethod { offered, ours });
        notify_plain(ctx, sa, NotifyType::NO_PROPOSAL_CHOSEN);
        return None;
    }
    match proposal::select(&offered, &sa.cfg.ike_proposals, Default::default()) {
        Ok(sel) => {
            let chosen = wire_ts
                .iter()
                .zip(offered.iter())
                .find(|((n, _), (_, prop))| {
                    *n == sel.number
                        && sel
                            .to_proposal(Vec::new())
                            .transforms
                            .iter()
                            .all(|t| prop.transforms.contains(t))
                })
                .map(|((_, w), _)| *w)?;
            set_algs(ctx, sa, chosen, sel).then_some(chosen)
        }
        Err(e) => {
            fail(ctx, sa, Failure::NoProposalChosen(e));
            notify_plain(ctx, sa, NotifyType::NO_PROPOSAL_CHOSEN);
            None
        }
    }
}

fn set_algs(ctx: &mut Ctx<'_>, sa: &mut Sa, t: P1Transform, selected: proposal::Selected) -> bool {
    let algs = (|| {
        let encr_v2 = ferrosec_crypto::ids::ikev1::ike_encr_to_v2(t.encr)?;
        let encr = Encryption::from_id(encr_v2, t.key_len).ok()?;
        let hash = HashAlgorithm::from_ikev1(t.hash)?;
        Some(P1Algs {
            wire: t,
            selected,
            encr,
            hash,
            prf: Prf::from_hash(hash),
        })
    })();
    match algs {
        Some(a) => {
            sa.algs = Some(a);
            true
        }
        None => {
            fail(
                ctx,
                sa,
                Failure::Crypto(CryptoFailure::Unsupported {
                    what: format!("IKEv1 transform {t:?}"),
                    why: ferrosec_crypto::Error::Unsupported("ISAKMP SA transform"),
                }),
            );
            false
        }
    }
}

/// An unencrypted informational notify to the peer during phase 1.
pub(crate) fn notify_plain(ctx: &mut Ctx<'_>, sa: &Sa, ty: NotifyType) {
    let mut n = Vec::new();
    n.extend_from_slice(&pl::DOI_IPSEC.to_be_bytes());
    n.push(IsakmpProto::ISAKMP.0);
    n.push(16);
    n.extend_from_slice(&ty.0.to_be_bytes());
    n.extend_from_slice(&sa.cky_i.0.to_be_bytes());
    n.extend_from_slice(&sa.cky_r.0.to_be_bytes());
    let body = pl::chain(&[(pt::N, &n)]);
    let m = message(
        sa.cky_i,
        sa.cky_r,
        ExchangeType::INFORMATIONAL,
        0,
        pt::N,
        false,
        &body,
    );
    ctx.out.send(sa.local, sa.remote, &m);
}

/// Responder: the first message of main or aggressive mode. `false`: nothing is kept.
pub(crate) fn respond_first(ctx: &mut Ctx<'_>, sa: &mut Sa, hdr: &Hdr, data: &[u8]) -> bool {
    if hdr.encrypted() {
        return false;
    }
    let Some(ps) = pl::walk(hdr.next, &data[HDR_LEN..]) else {
        return false;
    };
    let got = collect(&ps);
    note_vids(sa, &got.vids);
    sa.natt &= sa.cfg.nat_traversal;
    let Some(sa_body) = got.sa else {
        return false;
    };
    sa.sa_i_b = sa_body.to_vec();
    let Some(chosen) = select(ctx, sa, sa_body) else {
        return false;
    };
    let sa_r = pl::phase1_sa_body(&[chosen]);
    let mut parts: Vec<(PayloadType, Vec<u8>)> = vec![(pt::SA, sa_r)];
    if sa.mode == Mode::Aggressive {
        let (Some(ke), Some(ni), Some(id)) = (got.ke, got.nonce, got.id) else {
            return false;
        };
        let Some((nr, kx)) = nonce_and_ke(ctx, chosen.group) else {
            return false;
        };
        let Ok(g_xy) = kx.complete(ke) else {
            fail(
                ctx,
                sa,
                Failure::PeerMisbehaved {
                    exchange: exchange(sa),
                    response: false,
                    what: Malformed::KeGroup,
                },
            );
            return false;
        };
        sa.g_xi = ke.to_vec();
        sa.g_xr = kx.public_key().to_vec();
        sa.ni = ni.to_vec();
        sa.nr = nr;
        sa.g_xy = Some(g_xy);
        sa.kx = Some(kx);
        if !check_peer_id(ctx, sa, id) {
            return false;
        }
        sa.derive_keys();
        let Some(auth) = our_auth(ctx, sa, false) else {
            return false;
        };
        parts.push((pt::KE, sa.g_xr.clone()));
        parts.push((pt::NONCE, sa.nr.clone()));
        parts.push((pt::ID, sa.id_ours_b.clone()));
        parts.extend(our_crs(sa));
        parts.extend(auth);
        if sa.cfg.nat_traversal {
            parts.extend(our_nat_d(sa));
        }
    }
    for v in vendor_ids(sa) {
        parts.push((pt::VID, v.to_vec()));
    }
    let body = chain_owned(&parts);
    send(ctx, sa, pt::SA, &body, false);
    true
}

fn note_vids(sa: &mut Sa, vids: &[&[u8]]) {
    for v in vids {
        if *v == pl::VID_NATT {
            sa.natt = true;
        }
        if *v == pl::VID_DPD {
            sa.peer_dpd = true;
        }
        if super::frag::is_vid(v) {
            sa.peer_frag = true;
        }
    }
}

/// Checks the peer's ID payload body against the configured peer ID; records it.
fn check_peer_id(ctx: &mut Ctx<'_>, sa: &mut Sa, id_b: &[u8]) -> bool {
    let Ok(Payload::Id(id)) = Payload::parse(PayloadType::ID, id_b) else {
        fail(
            ctx,
            sa,
            Failure::PeerMisbehaved {
                exchange: exchange(sa),
                response: !sa.initiator,
                what: Malformed::Missing("a valid ID payload"),
            },
        );
        return false;
    };
    let presented = pl::identity_of(&id);
    if let Some(expected) = &sa.cfg.peer_id
        && !expected.matches(&presented)
    {
        let expected = expected.clone();
        fail(
            ctx,
            sa,
            Failure::IdMismatch {
                presented,
                expected,
            },
        );
        return false;
    }
    sa.peer_id = Some(presented);
    sa.peer_id_b = id_b.to_vec();
    true
}

/// A message after the first one of phase 1. `true`: the SA is gone.
pub(crate) fn handle(
    ctx: &mut Ctx<'_>,
    sa: &mut Sa,
    hdr: &Hdr,
    data: &[u8],
    _remote: SocketAddr,
) -> bool {
    let body = &data[HDR_LEN..];
    match sa.state {
        P1State::MainI1 | P1State::AggrI1 => {
            if hdr.encrypted() {
                return false;
            }
            let Some(ps) = pl::walk(hdr.next, body) else {
                return false;
            };
            let got = collect(&ps);
            note_vids(sa, &got.vids);
            sa.natt &= sa.cfg.nat_traversal;
            let Some(sa_body) = got.sa else {
                return false;
            };
            let Some(chosen) = check_answer(ctx, sa, sa_body) else {
                return true;
            };
            sa.cky_r = hdr.cky_r;
            if sa.state == P1State::MainI1 {
                let Some((ni, kx)) = nonce_and_ke(ctx, chosen.group) else {
                    fail(
                        ctx,
                        sa,
                        Failure::Crypto(CryptoFailure::Unsupported {
                            what: format!("DH group {}", chosen.group),
                            why: ferrosec_crypto::Error::Unsupported("key exchange group"),
                        }),
                    );
                    return true;
                };
                sa.g_xi = kx.public_key().to_vec();
                sa.ni = ni;
                sa.kx = Some(kx);
                let mut parts = vec![(pt::KE, sa.g_xi.clone()), (pt::NONCE, sa.ni.clone())];
                parts.extend(our_crs(sa));
                parts.extend(our_nat_d(sa));
                let body = chain_owned(&parts);
                sa.state = P1State::MainI3;
                send(ctx, sa, pt::KE, &body, false);
                false
            } else {
                // Aggressive mode, message 2.
                let (Some(ke), Some(nr), Some(id)) = (got.ke, got.nonce, got.id) else {
                    return false;
                };
                if got.hash.is_none() && got.sig.is_none() {
                    return false;
                }
                if !finish_dh(ctx, sa, ke, nr) || !check_peer_id(ctx, sa, id) {
                    return true;
                }
                if !verify(ctx, sa, false, id, &got) {
                    return true;
                }
                check_nat_d(sa, &got.nat_d);
                let Some(mut parts) = our_auth(ctx, sa, true) else {
                    return true;
                };
                parts.extend(our_nat_d(sa));
                float(sa);
                // HASH_I, or our first CERT.
                let first = parts[0].0;
                let plain = chain_owned(&parts);
                let mut iv = std::mem::take(&mut sa.iv);
                let Some(enc) = sa.encrypt(&mut iv, plain) else {
                    return true;
                };
                sa.iv = iv;
                let m = message(
                    sa.cky_i,
                    sa.cky_r,
                    ExchangeType::AGGRESSIVE,
                    0,
                    first,
                    true,
                    &enc,
                );
                super::transmit(ctx.out, sa, &m);
                sa.retx = None;
                sa.state = P1State::Established;
                false
            }
        }
        P1State::MainR2 => {
            if hdr.encrypted() {
                return false;
            }
            let Some(ps) = pl::walk(hdr.next, body) else {
                return false;
            };
            let got = collect(&ps);
            let (Some(ke), Some(ni)) = (got.ke, got.nonce) else {
                return false;
            };
            check_nat_d(sa, &got.nat_d);
            let group = sa.algs.as_ref().map_or(0, |a| a.wire.group);
            let Some((nr, kx)) = nonce_and_ke(ctx, group) else {
                return true;
            };
            let Ok(g_xy) = kx.complete(ke) else {
                fail(
                    ctx,
                    sa,
                    Failure::PeerMisbehaved {
                        exchange: exchange(sa),
                        response: false,
                        what: Malformed::KeGroup,
                    },
                );
                return true;
            };
            sa.g_xi = ke.to_vec();
            sa.g_xr = kx.public_key().to_vec();
            sa.ni = ni.to_vec();
            sa.nr = nr;
            sa.g_xy = Some(g_xy);
            sa.kx = Some(kx);
            sa.derive_keys();
            sa.last_request = super::digest(data);
            let mut parts = vec![(pt::KE, sa.g_xr.clone()), (pt::NONCE, sa.nr.clone())];
            parts.extend(our_crs(sa));
            parts.extend(our_nat_d(sa));
            let body = chain_owned(&parts);
            sa.state = P1State::MainR4;
            send(ctx, sa, pt::KE, &body, false);
            false
        }
        P1State::MainI3 => {
            if hdr.encrypted() {
                return false;
            }
            let Some(ps) = pl::walk(hdr.next, body) else {
                return false;
            };
            let got = collect(&ps);
            let (Some(ke), Some(nr)) = (got.ke, got.nonce) else {
                return false;
            };
            if !finish_dh(ctx, sa, ke, nr) {
                return true;
            }
            check_nat_d(sa, &got.nat_d);
            float(sa);
            let Some(auth) = our_auth(ctx, sa, true) else {
                return true;
            };
            let mut parts = vec![(pt::ID, sa.id_ours_b.clone())];
            parts.extend(auth);
            if sa.first_contact {
                parts.push((pt::N, initial_contact(sa)));
            }
            let plain = chain_owned(&parts);
            let mut iv = std::mem::take(&mut sa.iv);
            let Some(enc) = sa.encrypt(&mut iv, plain) else {
                return true;
            };
            sa.iv = iv;
            sa.state = P1State::MainI5;
            send(ctx, sa, pt::ID, &enc, true);
            false
        }
        P1State::MainR4 | P1State::MainI5 | P1State::AggrR2 => {
            let (ps_plain, next_iv) = if hdr.encrypted() {
                match sa.decrypt(&sa.iv, body) {
                    Ok(x) => x,
                    Err(_) => return false,
                }
            } else if sa.state == P1State::AggrR2 {
                (body.to_vec(), sa.iv.clone())
            } else {
                return false;
            };
            let Some(ps) = pl::walk(hdr.next, &ps_plain) else {
                // Decrypted to garbage: the keys differ, which with a pre-shared key means
                // the keys do.
                if sa.state == P1State::MainR4 || sa.state == P1State::MainI5 {
                    fail(ctx, sa, undecryptable(sa));
                    if sa.state == P1State::MainR4 {
                        notify_plain(ctx, sa, NotifyType::PAYLOAD_MALFORMED);
                    }
                    return true;
                }
                return false;
            };
            let got = collect(&ps);
            if sa.state == P1State::AggrR2 {
                check_nat_d(sa, &got.nat_d);
            }
            let id_b = match sa.state {
                P1State::AggrR2 => None,
                _ => got.id,
            };
            if sa.state != P1State::AggrR2 {
                let Some(id) = id_b else {
                    fail(ctx, sa, psk_mismatch());
                    return true;
                };
                if !check_peer_id(ctx, sa, id) {
                    refuse_after_keys(ctx, sa, next_iv, NotifyType::INVALID_ID_INFORMATION);
                    return true;
                }
            }
            let of_initiator = !sa.initiator;
            let peer_id_b = sa.peer_id_b.clone();
            if !verify(ctx, sa, of_initiator, &peer_id_b, &got) {
                refuse_after_keys(ctx, sa, next_iv, NotifyType::AUTHENTICATION_FAILED);
                return true;
            }
            sa.iv = next_iv;
            sa.peer_initial_contact = got.initial_contact;
            if sa.state == P1State::MainR4 {
                sa.last_request = super::digest(data);
                let Some(auth) = our_auth(ctx, sa, false) else {
                    return true;
                };
                let mut parts = vec![(pt::ID, sa.id_ours_b.clone())];
                parts.extend(auth);
                let plain = chain_owned(&parts);
                let mut iv = std::mem::take(&mut sa.iv);
                let Some(enc) = sa.encrypt(&mut iv, plain) else {
                    return true;
                };
                sa.iv = iv;
                send(ctx, sa, pt::ID, &enc, true);
            } else {
                sa.retx = None;
            }
            sa.state = P1State::Established;
            false
        }
        P1State::Established => false,
    }
}

fn psk_mismatch() -> Failure {
    Failure::AuthFailed
}

/// A phase-1 message that does not decrypt to payloads: with a pre-shared key the keys differ
/// (the PSKs do); with signatures the keys come from the exchange alone.
fn undecryptable(sa: &Sa) -> Failure {
    match sa.cert {
        None => psk_mismatch(),
        Some(_) => Failure::PeerMisbehaved {
            exchange: exchange(sa),
            response: sa.initiator,
            what: Malformed::Missing("payloads that decrypt with the agreed keys"),
        },
    }
}

fn initial_contact(sa: &Sa) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&pl::DOI_IPSEC.to_be_bytes());
    n.push(IsakmpProto::ISAKMP.0);
    n.push(16);
    n.extend_from_slice(&NotifyType::INITIAL_CONTACT.0.to_be_bytes());
    n.extend_from_slice(&sa.cky_i.0.to_be_bytes());
    n.extend_from_slice(&sa.cky_r.0.to_be_bytes());
    n
}

/// We refuse the peer's last main-mode message (its ID or authentication): as responder we
/// say why (message 5); as initiator (message 6) the responder already counts its SA as up,
/// so it is told why and the SA is deleted on it. Informational exchanges start from the
/// last CBC block of phase 1, that of the refused message (`last_block`).
fn refuse_after_keys(ctx: &mut Ctx<'_>, sa: &mut Sa, last_block: Vec<u8>, why: NotifyType) {
    match sa.state {
        P1State::MainR4 => {
            sa.iv = last_block;
            notify_encrypted_error(ctx, sa, why);
        }
        P1State::MainI5 => {
            sa.iv = last_block;
            notify_encrypted_error(ctx, sa, why);
            super::info::delete_isakmp(ctx, sa);
        }
        _ => {}
    }
}

/// An error notify once keys exist (protected informational, RFC 2409 §5.7).
fn notify_encrypted_error(ctx: &mut Ctx<'_>, sa: &mut Sa, ty: NotifyType) {
    super::info::send_notify(ctx, sa, ty, IsakmpProto::ISAKMP, &[], &[]);
}

/// Initiator: the responder's chosen transform must be one we offered.
fn check_answer(ctx: &mut Ctx<'_>, sa: &mut Sa, sa_body: &[u8]) -> Option<P1Transform> {
    let chosen = match Payload::parse(PayloadType::SA, sa_body) {
        Ok(Payload::Sa(w)) => w
            .proposals()
            .first()
            .and_then(|p| p.transforms.first())
            .and_then(pl::phase1_transform),
        _ => None,
    };
    let offered: Vec<_> = sa
        .offered
        .iter()
        .filter_map(pl::phase1_as_proposal)
        .collect();
    let Some(chosen) = chosen else {
        fail(
            ctx,
            sa,
            Failure::PeerMisbehaved {
                exchange: exchange(sa),
                response: true,
                what: Malformed::ProposalCount,
            },
        );
        return None;
    };
    let ok = sa.offered.iter().any(|o| {
        o.auth == chosen.auth
            && o.encr == chosen.encr
            && o.key_len == chosen.key_len
            && o.hash == chosen.hash
            && o.group == chosen.group
    });
    let Some(prop) = pl::phase1_as_proposal(&chosen).filter(|_| ok) else {
        let answer = pl::phase1_as_proposal(&chosen).unwrap_or_else(|| {
            crate::proposal::Proposal::new(ferrosec_wire::ikev2::ProtocolId::IKE, Vec::new())
        });
        fail(
            ctx,
            sa,
            Failure::BadAnswer(proposal::BadAnswer { answer, offered }),
        );
        return None;
    };
    let sel = proposal::select(&[(1, prop)], &sa.cfg.ike_proposals, Default::default()).ok()?;
    set_algs(ctx, sa, chosen, sel).then_some(chosen)
}

/// Initiator: the responder's KE and nonce; derives the keys.
fn finish_dh(ctx: &mut Ctx<'_>, sa: &mut Sa, ke: &[u8], nr: &[u8]) -> bool {
    let Some(kx) = sa.kx.as_ref() else {
        return false;
    };
    match kx.complete(ke) {
        Ok(g) => {
            sa.g_xy = Some(g);
            sa.g_xr = ke.to_vec();
            sa.nr = nr.to_vec();
            sa.derive_keys();
            true
        }
        Err(_) => {
            fail(
                ctx,
                sa,
                Failure::PeerMisbehaved {
                    exchange: exchange(sa),
                    response: true,
                    what: Malformed::KeGroup,
                },
            );
            false
        }
    }
}

/// Checks the peer's HASH_I / HASH_R (pre-shared key), or its certificate, ID and SIG
/// (signatures; the certificate is kept for `show`).
fn verify(ctx: &mut Ctx<'_>, sa: &mut Sa, of_initiator: bool, id_b: &[u8], got: &Got<'_>) -> bool {
    let Some(expected) = sa.phase1_hash(of_initiator, id_b) else {
        return false;
    };
    let Some(c) = sa.cert.clone() else {
        let ok = got.hash.is_some_and(|h: &[u8]| ct_eq(expected.expose(), h));
        if !ok {
            fail(ctx, sa, psk_mismatch());
        }
        return ok;
    };
    let Some(signature) = got.sig else {
        fail(
            ctx,
            sa,
            Failure::PeerMisbehaved {
                exchange: exchange(sa),
                response: sa.initiator,
                what: Malformed::Missing("a SIG payload (signature authentication was agreed)"),
            },
        );
        return false;
    };
    let Some(peer_id) = sa.peer_id.clone() else {
        return false;
    };
    match certs::check_peer(
        &c,
        sa.auth_method,
        &got.certs,
        &peer_id,
        expected.expose(),
        signature,
        ctx.unix_now,
    ) {
        Ok(cert) => {
            sa.peer_cert = Some(cert);
            true
        }
        Err(f) => {
            fail(ctx, sa, f);
            false
        }
    }
}

/// Offered to the peer with OfferRefused when it answers NO_PROPOSAL_CHOSEN.
pub(crate) fn refused(sa: &Sa) -> Failure {
    Failure::OfferRefused(OfferRefused {
        offered: sa
            .offered
            .iter()
            .filter_map(pl::phase1_as_proposal)
            .collect(),
    })
}

/// The IKE SA info for events.
pub(crate) fn info(sa: &Sa) -> Option<IkeSaInfo> {
    super::sa_info(sa)
}
