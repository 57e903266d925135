//! IKEv1 on the wire, beside the version-neutral pieces: the SA payloads of phase 1 and quick
//! mode built from (and mapped back to) the engine's proposals, ID payloads from identities
//! and proxy IDs, vendor IDs, and a walk over a payload chain that keeps each payload's raw
//! bytes (the HASH payloads cover them as received).

use ferrosec_crypto::ids::ikev1 as v1ids;
use ferrosec_wire::ikev2::{
    DhGroup, EncrId, EsnId, IdType as V2IdType, IntegId, PrfId, ProtocolId as V2Proto,
    TransformType,
};
use ferrosec_wire::isakmp::{
    AhTransformId, EncapsulationMode, IdAddress, Identification, IpsecAttr, LifeType, Payload,
    PayloadType, Phase1Attr, ProtocolId, Transform as WireTransform,
};
use ferrosec_wire::{AttrValue, DataAttribute};

use crate::identity::Identity;
use crate::proposal::{Proposal, Transform};
use crate::ts::{AddrRange, PortRange, TrafficSelector};

/// RFC 3947 NAT-T vendor ID: MD5("RFC 3947").
pub const VID_NATT: [u8; 16] = [
    0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f,
];
/// RFC 3706 DPD vendor ID (version 1.0).
pub const VID_DPD: [u8; 16] = [
    0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00,
];
/// The IKE fragmentation vendor ID (its first 16 octets; `frag.rs` sends and recognises it).
pub const VID_FRAG: [u8; 16] = [
    0x40, 0x48, 0xb7, 0xd5, 0x6e, 0xbc, 0xe8, 0x85, 0x25, 0xe7, 0xde, 0x7f, 0x00, 0xd6, 0xc2, 0xd3,
];

/// IPsec DOI.
pub const DOI_IPSEC: u32 = 1;
/// SIT_IDENTITY_ONLY.
pub const SIT_IDENTITY_ONLY: u32 = 1;
/// KEY_IKE, the only phase-1 transform ID.
const KEY_IKE: u8 = 1;
/// Pre-shared key authentication method.
pub const AUTH_PSK: u16 = 1;
/// RSA signatures (RFC 2409 Appendix A).
pub const AUTH_RSA_SIG: u16 = 3;
/// ECDSA with SHA-256 on P-256 (RFC 4754 §8).
pub const AUTH_ECDSA_256: u16 = 9;
/// ECDSA with SHA-384 on P-384 (RFC 4754 §8).
pub const AUTH_ECDSA_384: u16 = 10;
/// ECDSA with SHA-512 on P-521 (RFC 4754 §8).
pub const AUTH_ECDSA_521: u16 = 11;

/// A phase-1 authentication method in words, for logs.
pub fn auth_method_name(m: u16) -> String {
    match m {
        AUTH_PSK => "pre-shared key (1)".into(),
        2 => "DSS signatures (2)".into(),
        AUTH_RSA_SIG => "RSA signatures (3)".into(),
        4 | 5 => format!("RSA encryption ({m})"),
        AUTH_ECDSA_256 => "ECDSA P-256 signatures (9)".into(),
        AUTH_ECDSA_384 => "ECDSA P-384 signatures (10)".into(),
        AUTH_ECDSA_521 => "ECDSA P-521 signatures (11)".into(),
        64_221 | 64_222 => format!("hybrid RSA with XAUTH ({m})"),
        65_001..=65_010 => format!("XAUTH ({m})"),
        _ => format!("method {m}"),
    }
}

/// One payload of a chain, with its raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawPayload<'a> {
    /// Its type.
    pub ty: PayloadType,
    /// The body after the 4-byte generic header.
    pub body: &'a [u8],
    /// The whole payload, generic header included.
    pub whole: &'a [u8],
}

/// Walks a payload chain starting with `first` over `buf`; trailing bytes after the last
/// payload (the padding of an encrypted message) are ignored. `None` when a length is out of
/// bounds or the chain is longer than 64 payloads.
pub fn walk(first: PayloadType, buf: &[u8]) -> Option<Vec<RawPayload<'_>>> {
    let mut out = Vec::new();
    let mut next = first;
    let mut at = 0usize;
    while next != PayloadType::NONE {
        if out.len() >= 64 {
            return None;
        }
        let head = buf.get(at..at + 4)?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if len < 4 {
            return None;
        }
        let whole = buf.get(at..at + len)?;
        out.push(RawPayload {
            ty: next,
            body: &whole[4..],
            whole,
        });
        next = PayloadType(head[0]);
        at += len;
    }
    Some(out)
}

/// Encodes payloads given as (type, body) into a chain.
pub fn chain(payloads: &[(PayloadType, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payloads.iter().map(|(_, b)| b.len() + 4).sum());
    for (i, (_, body)) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(0, |(t, _)| t.0);
        out.push(next);
        out.push(0);
        let len = u16::try_from(body.len() + 4).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// The body of one parsed payload of a known type, re-encoded (for payloads we build with the
/// wire crate's types).
pub fn body_of(p: &Payload<'_>) -> Vec<u8> {
    let mut buf = vec![0; p.buffer_len()];
    let n = ferrosec_wire::isakmp::emit_payloads(std::slice::from_ref(p), &mut buf).unwrap_or(0);
    buf.truncate(n);
    buf.get(4..).map(<[u8]>::to_vec).unwrap_or_default()
}

fn attr(out: &mut Vec<u8>, ty: u16, value: u64) {
    if let Ok(v) = u16::try_from(value) {
        out.extend_from_slice(&(ty | 0x8000).to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&(value.min(u64::from(u32::MAX)) as u32).to_be_bytes());
    }
}

/// A phase-1 transform in IKEv1 terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P1Transform {
    /// Encryption algorithm (class 1).
    pub encr: u16,
    /// Key length in bits (AES).
    pub key_len: Option<u16>,
    /// Hash algorithm (class 2).
    pub hash: u16,
    /// Group description (class 4).
    pub group: u16,
    /// Lifetime in seconds.
    pub life_secs: Option<u64>,
    /// Authentication method (class 3): [`AUTH_PSK`], [`AUTH_RSA_SIG`], [`AUTH_ECDSA_256`] …
    pub auth: u16,
}

fn v2_encr_to_ike1(e: EncrId) -> Option<u16> {
    match e {
        EncrId::AES_CBC => Some(v1ids::encr::AES_CBC),
        EncrId::TRIPLE_DES => Some(v1ids::encr::TRIPLE_DES_CBC),
        EncrId::DES => Some(v1ids::encr::DES_CBC),
        _ => None,
    }
}

fn v2_prf_to_hash(p: PrfId) -> Option<u16> {
    use v1ids::hash as h;
    match p {
        PrfId::HMAC_MD5 => Some(h::MD5),
        PrfId::HMAC_SHA1 => Some(h::SHA1),
        PrfId::HMAC_SHA2_256 => Some(h::SHA2_256),
        PrfId::HMAC_SHA2_384 => Some(h::SHA2_384),
        PrfId::HMAC_SHA2_512 => Some(h::SHA2_512),
        _ => None,
    }
}

/// The HMAC integrity of the same hash (IKEv1 has no separate integrity transform; mapping to
/// it lets the version-neutral selection compare with the IKE crypto profile as configured).
fn hash_to_v2_integ(hash: u16) -> Option<IntegId> {
    use v1ids::hash as h;
    Some(match hash {
        h::MD5 => IntegId::HMAC_MD5_96,
        h::SHA1 => IntegId::HMAC_SHA1_96,
        h::SHA2_256 => IntegId::HMAC_SHA2_256_128,
        h::SHA2_384 => IntegId::HMAC_SHA2_384_192,
        h::SHA2_512 => IntegId::HMAC_SHA2_512_256,
        _ => return None,
    })
}

/// Our IKE proposals as IKEv1 phase-1 transforms, in preference order: every combination of
/// a CBC cipher, a PRF's hash and a group. AEAD ciphers (not defined for IKEv1) are left
/// out. Every transform carries the authentication method `auth`.
pub fn phase1_offer(ours: &[Proposal], life_secs: Option<u64>, auth: u16) -> Vec<P1Transform> {
    let mut out = Vec::new();
    for p in ours {
        for e in p.of_type(TransformType::ENCR) {
            let Some(encr) = v2_encr_to_ike1(EncrId(e.id)) else {
                continue;
            };
            for prf in p.of_type(TransformType::PRF) {
                let Some(hash) = v2_prf_to_hash(PrfId(prf.id)) else {
                    continue;
                };
                for ke in p.of_type(TransformType::KE) {
                    let t = P1Transform {
                        encr,
                        key_len: e.key_len,
                        hash,
                        group: ke.id,
                        life_secs,
                        auth,
                    };
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
        }
    }
    out
}

/// The body of a phase-1 SA payload: one ISAKMP proposal with these transforms.
pub fn phase1_sa_body(ts: &[P1Transform]) -> Vec<u8> {
    let mut transforms = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        let mut attrs = Vec::new();
        attr(
            &mut attrs,
            Phase1Attr::ENCRYPTION_ALGORITHM.0,
            u64::from(t.encr),
        );
        if let Some(k) = t.key_len {
            attr(&mut attrs, Phase1Attr::KEY_LENGTH.0, u64::from(k));
        }
        attr(&mut attrs, Phase1Attr::HASH_ALGORITHM.0, u64::from(t.hash));
        attr(
            &mut attrs,
            Phase1Attr::AUTHENTICATION_METHOD.0,
            u64::from(t.auth),
        );
        attr(
            &mut attrs,
            Phase1Attr::GROUP_DESCRIPTION.0,
            u64::from(t.group),
        );
        if let Some(l) = t.life_secs {
            attr(
                &mut attrs,
                Phase1Attr::LIFE_TYPE.0,
                u64::from(LifeType::SECONDS.0),
            );
            attr(&mut attrs, Phase1Attr::LIFE_DURATION.0, l);
        }
        transforms.push((i, KEY_IKE, attrs));
    }
    sa_body(ProtocolId::ISAKMP, &[], &transforms)
}

/// Transforms of one proposal: (number index, transform ID, attributes).
type Transforms = Vec<(usize, u8, Vec<u8>)>;

/// An SA payload body with several proposals, numbered from `first` (one SPI for all).
fn sa_body_multi(props: &[(ProtocolId, Transforms)], spi: &[u8], first: u8) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, (protocol, transforms)) in props.iter().enumerate() {
        let one = sa_body(*protocol, spi, transforms);
        // The proposal payload of `sa_body` starts after DOI and situation (8 bytes).
        let mut prop = one[8..].to_vec();
        prop[0] = if k + 1 == props.len() { 0 } else { 2 };
        prop[4] = first.saturating_add(k as u8);
        if k == 0 {
            body.extend_from_slice(&one[..8]);
        }
        body.extend_from_slice(&prop);
    }
    body
}

/// An SA payload body with one proposal: (transform number index, transform ID, attributes).
fn sa_body(protocol: ProtocolId, spi: &[u8], transforms: &[(usize, u8, Vec<u8>)]) -> Vec<u8> {
    // Proposal number 1, protocol, SPI size, number of transforms.
    let mut prop = vec![
        1,
        protocol.0,
        spi.len() as u8,
        transforms.len().min(255) as u8,
    ];
    prop.extend_from_slice(spi);
    let n = transforms.len();
    for (i, (num, id, attrs)) in transforms.iter().enumerate() {
        prop.push(if i + 1 == n { 0 } else { 3 });
        prop.push(0);
        prop.extend_from_slice(&((8 + attrs.len()) as u16).to_be_bytes());
        prop.push((*num + 1).min(255) as u8);
        prop.push(*id);
        prop.extend_from_slice(&[0, 0]);
        prop.extend_from_slice(attrs);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&DOI_IPSEC.to_be_bytes());
    body.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
    body.push(0); // last proposal
    body.push(0);
    body.extend_from_slice(&((4 + prop.len()) as u16).to_be_bytes());
    body.extend_from_slice(&prop);
    body
}

/// A phase-1 transform as received, or why it cannot be understood.
pub fn phase1_transform(t: &WireTransform<'_>) -> Option<P1Transform> {
    if t.id != KEY_IKE {
        return None;
    }
    let auth = u16::try_from(t.attribute(Phase1Attr::AUTHENTICATION_METHOD.0)?).ok()?;
    let life_type = t.attribute(Phase1Attr::LIFE_TYPE.0);
    let life_secs = match life_type {
        // A duration of 0 (strongSwan answers so when none was offered) means none.
        Some(v) if v == u64::from(LifeType::SECONDS.0) => {
            t.attribute(Phase1Attr::LIFE_DURATION.0).filter(|d| *d > 0)
        }
        _ => None,
    };
    Some(P1Transform {
        encr: u16::try_from(t.attribute(Phase1Attr::ENCRYPTION_ALGORITHM.0)?).ok()?,
        key_len: t
            .attribute(Phase1Attr::KEY_LENGTH.0)
            .and_then(|k| u16::try_from(k).ok()),
        hash: u16::try_from(t.attribute(Phase1Attr::HASH_ALGORITHM.0)?).ok()?,
        group: u16::try_from(t.attribute(Phase1Attr::GROUP_DESCRIPTION.0)?).ok()?,
        life_secs,
        auth,
    })
}

/// A phase-1 transform in the engine's (IKEv2-named) proposal terms, for the version-neutral
/// selection and for `show`.
pub fn phase1_as_proposal(t: &P1Transform) -> Option<Proposal> {
    let encr = v1ids::ike_encr_to_v2(t.encr)?;
    let prf = v1ids::hash_to_v2_prf(t.hash)?;
    let integ = hash_to_v2_integ(t.hash)?;
    Some(Proposal::new(
        V2Proto::IKE,
        vec![
            Transform::encr(EncrId(encr), t.key_len),
            Transform::prf(PrfId(prf)),
            Transform::integ(integ),
            Transform::ke(DhGroup(t.group)),
        ],
    ))
}

/// A quick-mode transform in IKEv1 terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QmTransform {
    /// AH (RFC 2402) rather than ESP: `encr` is then the AH transform ID (RFC 2407 §4.4.3)
    /// and `auth` its authentication algorithm.
    pub ah: bool,
    /// ESP transform ID (numerically the IKEv2 ENCR ID), or the AH transform ID.
    pub encr: u8,
    /// Key length in bits.
    pub key_len: Option<u16>,
    /// Authentication algorithm (IPsec DOI), none with AEAD.
    pub auth: Option<u16>,
    /// PFS group.
    pub group: Option<u16>,
    /// Encapsulation mode.
    pub mode: u16,
    /// Lifetime in seconds.
    pub life_secs: Option<u64>,
    /// Lifetime in kilobytes (RFC 2407 §4.5: a second life type/duration pair).
    pub life_kb: Option<u64>,
}

/// The AH transform ID that goes with an authentication algorithm (RFC 2407 §4.4.3, RFC
/// 4868 §4 for SHA-2).
fn ah_transform_of(auth: u16) -> Option<u8> {
    use v1ids::auth as a;
    Some(match auth {
        a::HMAC_MD5 => AhTransformId::MD5.0,
        a::HMAC_SHA1 => AhTransformId::SHA.0,
        a::HMAC_SHA2_256 => AhTransformId::SHA2_256.0,
        a::HMAC_SHA2_384 => AhTransformId::SHA2_384.0,
        a::HMAC_SHA2_512 => AhTransformId::SHA2_512.0,
        a::AES_XCBC_MAC => AhTransformId::AES_XCBC_MAC.0,
        _ => return None,
    })
}

fn v2_integ_to_auth(i: IntegId) -> Option<u16> {
    use v1ids::auth as a;
    Some(match i {
        IntegId::HMAC_MD5_96 => a::HMAC_MD5,
        IntegId::HMAC_SHA1_96 => a::HMAC_SHA1,
        IntegId::HMAC_SHA2_256_128 => a::HMAC_SHA2_256,
        IntegId::HMAC_SHA2_384_192 => a::HMAC_SHA2_384,
        IntegId::HMAC_SHA2_512_256 => a::HMAC_SHA2_512,
        IntegId::AES_XCBC_96 => a::AES_XCBC_MAC,
        _ => return None,
    })
}

/// The encapsulation mode for tunnel mode, with or without UDP (RFC 3947 §5.1).
pub fn encap_mode(udp: bool) -> u16 {
    if udp {
        EncapsulationMode::UDP_ENCAPSULATED_TUNNEL.0
    } else {
        EncapsulationMode::TUNNEL.0
    }
}

/// Our ESP and AH proposals as quick-mode transforms: every cipher with every integrity (none
/// with AEAD), every AH integrity, the first PFS group of each proposal, the lifetimes in
/// seconds and kilobytes.
pub fn qm_offer(
    ours: &[Proposal],
    life_secs: Option<u64>,
    life_kb: Option<u64>,
    udp: bool,
) -> Vec<QmTransform> {
    let mut out = Vec::new();
    for p in ours {
        let group = p
            .of_type(TransformType::KE)
            .map(|t| t.id)
            .find(|g| *g != DhGroup::NONE.0);
        if p.protocol == V2Proto::AH {
            for i in p.of_type(TransformType::INTEG) {
                let Some(auth) = v2_integ_to_auth(IntegId(i.id)) else {
                    continue;
                };
                let Some(encr) = ah_transform_of(auth) else {
                    continue;
                };
                let t = QmTransform {
                    ah: true,
                    encr,
                    key_len: None,
                    auth: Some(auth),
                    group,
                    mode: encap_mode(udp),
                    life_secs,
                    life_kb,
                };
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            continue;
        }
        if p.protocol != V2Proto::ESP {
            continue;
        }
        for e in p.of_type(TransformType::ENCR) {
            let Ok(encr) = u8::try_from(e.id) else {
                continue;
            };
            let aead = crate::proposal::is_aead(EncrId(e.id));
            let auths: Vec<Option<u16>> = if aead {
                vec![None]
            } else {
                p.of_type(TransformType::INTEG)
                    .filter_map(|i| v2_integ_to_auth(IntegId(i.id)))
                    .map(Some)
                    .collect()
            };
            for auth in auths {
                let t = QmTransform {
                    ah: false,
                    encr,
                    key_len: e.key_len,
                    auth,
                    group,
                    mode: encap_mode(udp),
                    life_secs,
                    life_kb,
                };
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// The body of a quick-mode SA payload with our SPI: the ESP transforms in proposal 1, the
/// AH ones in the next (RFC 2408 §4.2: proposals with distinct numbers are alternatives);
/// an answer (one transform) keeps the number `first` of the proposal it chose.
pub fn qm_sa_body(spi: u32, ts: &[QmTransform], first: u8) -> Vec<u8> {
    let mut props: Vec<(ProtocolId, Transforms)> = Vec::new();
    for (proto, ah) in [(ProtocolId::IPSEC_ESP, false), (ProtocolId::IPSEC_AH, true)] {
        let transforms: Transforms = ts
            .iter()
            .filter(|t| t.ah == ah)
            .enumerate()
            .map(|(i, t)| (i, t.encr, qm_attrs(t)))
            .collect();
        if !transforms.is_empty() {
            props.push((proto, transforms));
        }
    }
    sa_body_multi(&props, &spi.to_be_bytes(), first)
}

fn qm_attrs(t: &QmTransform) -> Vec<u8> {
    let mut attrs = lifetime_attrs(t.life_secs, t.life_kb);
    if let Some(g) = t.group {
        attr(&mut attrs, IpsecAttr::GROUP_DESCRIPTION.0, u64::from(g));
    }
    attr(
        &mut attrs,
        IpsecAttr::ENCAPSULATION_MODE.0,
        u64::from(t.mode),
    );
    if let Some(a) = t.auth {
        attr(
            &mut attrs,
            IpsecAttr::AUTHENTICATION_ALGORITHM.0,
            u64::from(a),
        );
    }
    if let Some(k) = t.key_len {
        attr(&mut attrs, IpsecAttr::KEY_LENGTH.0, u64::from(k));
    }
    attrs
}

/// Life type/duration attribute pairs (RFC 2407 §4.5) for these lifetimes.
pub fn lifetime_attrs(secs: Option<u64>, kb: Option<u64>) -> Vec<u8> {
    let mut attrs = Vec::new();
    for (ty, v) in [(LifeType::SECONDS, secs), (LifeType::KILOBYTES, kb)] {
        if let Some(v) = v {
            attr(&mut attrs, IpsecAttr::SA_LIFE_TYPE.0, u64::from(ty.0));
            attr(&mut attrs, IpsecAttr::SA_LIFE_DURATION.0, v);
        }
    }
    attrs
}

/// The lifetimes in a raw attribute list (the data of a RESPONDER-LIFETIME notify):
/// (seconds, kilobytes). Malformed lists end the walk.
pub fn attr_lifetimes(mut data: &[u8]) -> (Option<u64>, Option<u64>) {
    let (mut secs, mut kb, mut ty) = (None, None, None);
    while data.len() >= 4 {
        let t = u16::from_be_bytes([data[0], data[1]]);
        let (ty_, v, len) = if t & 0x8000 != 0 {
            (
                t & 0x7fff,
                Some(u64::from(u16::from_be_bytes([data[2], data[3]]))),
                4,
            )
        } else {
            let n = usize::from(u16::from_be_bytes([data[2], data[3]]));
            let Some(val) = data.get(4..4 + n) else {
                break;
            };
            let v = (n <= 8).then(|| val.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)));
            (t, v, 4 + n)
        };
        if ty_ == IpsecAttr::SA_LIFE_TYPE.0 {
            ty = v;
        } else if ty_ == IpsecAttr::SA_LIFE_DURATION.0 {
            match ty.take() {
                Some(x) if x == u64::from(LifeType::SECONDS.0) => secs = v.filter(|d| *d > 0),
                Some(x) if x == u64::from(LifeType::KILOBYTES.0) => kb = v.filter(|d| *d > 0),
                _ => {}
            }
        }
        data = &data[len..];
    }
    (secs, kb)
}

/// The lifetimes of a transform's attributes: each SA Life Type followed by its SA Life
/// Duration (RFC 2407 §4.5), seconds and kilobytes; (seconds, kilobytes).
pub fn lifetimes(t: &WireTransform<'_>) -> (Option<u64>, Option<u64>) {
    let (mut secs, mut kb, mut ty) = (None, None, None);
    for a in &t.attributes {
        if a.ty == IpsecAttr::SA_LIFE_TYPE.0 {
            ty = a.as_u64();
        } else if a.ty == IpsecAttr::SA_LIFE_DURATION.0 {
            match ty.take() {
                // A duration of 0 means none (strongSwan answers 0 when none was offered).
                Some(v) if v == u64::from(LifeType::SECONDS.0) => {
                    secs = a.as_u64().filter(|d| *d > 0);
                }
                Some(v) if v == u64::from(LifeType::KILOBYTES.0) => {
                    kb = a.as_u64().filter(|d| *d > 0);
                }
                _ => {}
            }
        }
    }
    (secs, kb)
}

/// A quick-mode transform as received, in a proposal of ESP (`ah` false) or AH.
pub fn qm_transform(t: &WireTransform<'_>, ah: bool) -> Option<QmTransform> {
    let (life_secs, life_kb) = lifetimes(t);
    Some(QmTransform {
        ah,
        encr: t.id,
        key_len: t
            .attribute(IpsecAttr::KEY_LENGTH.0)
            .and_then(|k| u16::try_from(k).ok()),
        auth: t
            .attribute(IpsecAttr::AUTHENTICATION_ALGORITHM.0)
            .and_then(|a| u16::try_from(a).ok()),
        group: t
            .attribute(IpsecAttr::GROUP_DESCRIPTION.0)
            .and_then(|g| u16::try_from(g).ok()),
        mode: t
            .attribute(IpsecAttr::ENCAPSULATION_MODE.0)
            .and_then(|m| u16::try_from(m).ok())
            .unwrap_or(EncapsulationMode::TUNNEL.0),
        life_secs,
        life_kb,
    })
}

/// A quick-mode transform in the engine's proposal terms.
pub fn qm_as_proposal(t: &QmTransform) -> Option<Proposal> {
    if t.ah {
        // The transform ID and the authentication attribute must agree (RFC 2407 §4.4.3).
        let auth = t.auth?;
        if ah_transform_of(auth) != Some(t.encr) {
            return None;
        }
        return Some(Proposal::new(
            V2Proto::AH,
            vec![
                Transform::integ(IntegId(v1ids::auth_to_v2_integ(auth)?)),
                Transform::ke(DhGroup(t.group.unwrap_or(DhGroup::NONE.0))),
                Transform::esn(EsnId::NO_ESN),
            ],
        ));
    }
    let mut ts = vec![Transform::encr(EncrId(u16::from(t.encr)), t.key_len)];
    if let Some(a) = t.auth {
        ts.push(Transform::integ(IntegId(v1ids::auth_to_v2_integ(a)?)));
    }
    ts.push(Transform::ke(DhGroup(t.group.unwrap_or(DhGroup::NONE.0))));
    ts.push(Transform::esn(EsnId::NO_ESN));
    Some(Proposal::new(V2Proto::ESP, ts))
}

/// The attributes of a data attribute list that this engine does not understand (so that a
/// transform carrying them is refused rather than half-honoured).
pub fn unknown_qm_attr(t: &WireTransform<'_>) -> bool {
    t.attributes.iter().any(|a: &DataAttribute<'_>| {
        let known = [
            IpsecAttr::SA_LIFE_TYPE.0,
            IpsecAttr::SA_LIFE_DURATION.0,
            IpsecAttr::GROUP_DESCRIPTION.0,
            IpsecAttr::ENCAPSULATION_MODE.0,
            IpsecAttr::AUTHENTICATION_ALGORITHM.0,
            IpsecAttr::KEY_LENGTH.0,
        ];
        !known.contains(&a.ty)
            || (a.ty == IpsecAttr::SA_LIFE_TYPE.0 && matches!(a.value, AttrValue::Variable(_)))
    })
}

/// The body of a phase-1 ID payload: protocol UDP, port 500 (RFC 2407 §4.6.2).
pub fn identity_body(id: &Identity) -> Vec<u8> {
    let mut b = vec![id.ty.0, 17, 0x01, 0xf4];
    b.extend_from_slice(&id.data);
    b
}

/// The identity of a phase-1 ID payload (the ID types IKEv1 and IKEv2 share have the same
/// numbers).
pub fn identity_of(id: &Identification<'_>) -> Identity {
    Identity {
        ty: V2IdType(id.id_type.0),
        data: id.data.to_vec(),
    }
}

/// The body of a quick-mode ID payload for one selector: an address, a subnet or a range,
/// with the protocol and (single) port.
pub fn selector_body(ts: &TrafficSelector) -> Vec<u8> {
    let r = ts.addrs;
    let v6 = r.is_ipv6();
    let port = if ts.ports.is_any() || ts.ports.start != ts.ports.end {
        0
    } else {
        ts.ports.start
    };
    let mut b = Vec::with_capacity(36);
    let octets = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    let (ty, data) = if r.start() == r.end() {
        (if v6 { 5 } else { 1 }, octets(r.start()))
    } else if let Some(len) = r.prefix_len() {
        let mask = mask_of(v6, len);
        let mut d = octets(r.start());
        d.extend_from_slice(&mask);
        (if v6 { 6 } else { 4 }, d)
    } else {
        let mut d = octets(r.start());
        d.extend(octets(r.end()));
        (if v6 { 8 } else { 7 }, d)
    };
    b.push(ty);
    b.push(ts.protocol);
    b.extend_from_slice(&port.to_be_bytes());
    b.extend_from_slice(&data);
    b
}

fn mask_of(v6: bool, len: u8) -> Vec<u8> {
    let bytes = if v6 { 16 } else { 4 };
    (0..bytes)
        .map(|i| {
            let bits = (i32::from(len) - i * 8).clamp(0, 8);
            (0xffu16 << (8 - bits)) as u8
        })
        .collect()
}

fn prefix_of_mask(mask: std::net::IpAddr) -> Option<u8> {
    let bytes = match mask {
        std::net::IpAddr::V4(m) => m.octets().to_vec(),
        std::net::IpAddr::V6(m) => m.octets().to_vec(),
    };
    let mut len = 0u8;
    let mut ended = false;
    for b in bytes {
        for i in (0..8).rev() {
            if b & (1 << i) != 0 {
                if ended {
                    return None;
                }
                len += 1;
            } else {
                ended = true;
            }
        }
    }
    Some(len)
}

/// The selector of a quick-mode ID payload; `None` for a type that is not an address, subnet
/// or range.
pub fn selector_of(id: &Identification<'_>) -> Option<TrafficSelector> {
    let addrs = match id.address()? {
        IdAddress::Address(a) => AddrRange::host(a),
        IdAddress::Subnet(a, m) => AddrRange::from_prefix(a, prefix_of_mask(m)?).ok()?,
        IdAddress::Range(a, b) => AddrRange::new(a, b).ok()?,
    };
    let ports = if id.port == 0 {
        PortRange::ANY
    } else {
        PortRange::single(id.port)
    };
    Some(TrafficSelector {
        addrs,
        protocol: id.protocol,
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosec_wire::isakmp::Sa;

    fn net(s: &str) -> TrafficSelector {
        let (a, l) = s.split_once('/').unwrap();
        TrafficSelector::from_addrs(
            AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap(),
        )
    }

    fn parse_sa(body: &[u8]) -> Sa<'_> {
        match Payload::parse(PayloadType::SA, body).unwrap() {
            Payload::Sa(sa) => sa,
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn phase1_offer_round_trips_through_the_wire() {
        let ours = vec![crate::v2::ike_proposal_cbc(256, DhGroup::MODP_2048)];
        let offer = phase1_offer(&ours, Some(28_800), AUTH_PSK);
        assert_eq!(offer.len(), 1);
        let body = phase1_sa_body(&offer);
        let sa = parse_sa(&body);
        let t = &sa.proposals()[0].transforms[0];
        let back = phase1_transform(t).unwrap();
        assert_eq!(back, offer[0]);
        let p = phase1_as_proposal(&back).unwrap();
        let sel = crate::proposal::select(&[(1, p)], &ours, Default::default()).unwrap();
        assert_eq!(sel.encr, Some((EncrId::AES_CBC, Some(256))));
        assert_eq!(sel.ke, Some(DhGroup::MODP_2048));
    }

    #[test]
    fn a_lifetime_above_16_bits_is_a_four_byte_attribute() {
        let offer = [P1Transform {
            encr: 7,
            key_len: Some(128),
            hash: 2,
            group: 2,
            life_secs: Some(86_400),
            auth: AUTH_RSA_SIG,
        }];
        let body = phase1_sa_body(&offer);
        let sa = parse_sa(&body);
        assert_eq!(
            phase1_transform(&sa.proposals()[0].transforms[0])
                .unwrap()
                .life_secs,
            Some(86_400)
        );
    }

    #[test]
    fn qm_offer_expands_ciphers_and_integrities_and_round_trips() {
        let ours = vec![
            crate::v2::esp_proposal_gcm(),
            crate::v2::esp_proposal_cbc(128),
        ];
        let offer = qm_offer(&ours, Some(3600), None, false);
        assert_eq!(offer.len(), 2);
        assert_eq!(offer[0].auth, None);
        assert_eq!(offer[1].auth, Some(v1ids::auth::HMAC_SHA2_256));
        let body = qm_sa_body(0x1234_5678, &offer, 1);
        let sa = parse_sa(&body);
        let p = &sa.proposals()[0];
        assert_eq!(p.child_spi().unwrap().0, 0x1234_5678);
        let back: Vec<_> = p
            .transforms
            .iter()
            .map(|t| qm_transform(t, false).unwrap())
            .collect();
        assert_eq!(back, offer);
        for t in &back {
            let prop = qm_as_proposal(t).unwrap();
            crate::proposal::select(&[(1, prop)], &ours, Default::default()).unwrap();
        }
    }

    /// ESP and AH alternatives go out as proposals 1 (ESP) and 2 (AH) with one SPI; the
    /// lifetimes in seconds and kilobytes (a 4-byte value) come back, and an AH transform maps
    /// to an AH proposal with its integrity.
    #[test]
    fn esp_and_ah_offers_with_both_lifetimes_round_trip() {
        let ah = crate::proposal::Proposal::new(
            V2Proto::AH,
            vec![
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                Transform::esn(EsnId::NO_ESN),
            ],
        );
        let ours = vec![crate::v2::esp_proposal_gcm(), ah];
        let offer = qm_offer(&ours, Some(28_800), Some(4_608_000), false);
        assert_eq!(offer.len(), 2);
        assert!(!offer[0].ah && offer[1].ah);
        assert_eq!(offer[1].encr, AhTransformId::SHA2_256.0);
        let body = qm_sa_body(0xc0ff_ee00, &offer, 1);
        let sa = parse_sa(&body);
        let props = sa.proposals();
        assert_eq!(props.len(), 2);
        assert_eq!(
            (
                props[0].number,
                props[0].protocol,
                props[1].number,
                props[1].protocol
            ),
            (1, ProtocolId::IPSEC_ESP, 2, ProtocolId::IPSEC_AH)
        );
        assert_eq!(props[1].child_spi().unwrap().0, 0xc0ff_ee00);
        let back_ah = qm_transform(&props[1].transforms[0], true).unwrap();
        assert_eq!(back_ah, offer[1]);
        assert_eq!(
            (back_ah.life_secs, back_ah.life_kb),
            (Some(28_800), Some(4_608_000))
        );
        let p = qm_as_proposal(&back_ah).unwrap();
        assert_eq!(p.protocol, V2Proto::AH);
        crate::proposal::select(&[(1, p)], &ours, Default::default()).unwrap();
        // An answer keeps the number of the proposal it chose.
        let answer = qm_sa_body(1, &offer[1..], 2);
        assert_eq!(parse_sa(&answer).proposals()[0].number, 2);
        // RESPONDER-LIFETIME data: the same pairs as a bare attribute list.
        assert_eq!(
            attr_lifetimes(&lifetime_attrs(Some(3600), Some(100_000))),
            (Some(3600), Some(100_000))
        );
        assert_eq!(
            attr_lifetimes(&lifetime_attrs(None, Some(7))),
            (None, Some(7))
        );
        assert_eq!(
            attr_lifetimes(&[0x80, 0x01, 0, 1, 0x00]),
            (None, None),
            "truncated"
        );
        // A duration of 0 is no lifetime, not an expired one.
        assert_eq!(
            attr_lifetimes(&lifetime_attrs(Some(0), Some(0))),
            (None, None)
        );
        let zero = QmTransform {
            life_secs: Some(0),
            life_kb: Some(0),
            ..offer[0]
        };
        let body = qm_sa_body(1, &[zero], 1);
        let t = qm_transform(&parse_sa(&body).proposals()[0].transforms[0], false).unwrap();
        assert_eq!((t.life_secs, t.life_kb), (None, None));
    }

    #[test]
    fn selectors_round_trip_as_subnet_address_and_range() {
        for ts in [
            net("10.1.0.0/24"),
            net("10.1.0.7/32"),
            net("2001:db8::/48"),
            TrafficSelector::from_addrs(
                AddrRange::new("10.0.0.5".parse().unwrap(), "10.0.0.9".parse().unwrap()).unwrap(),
            ),
        ] {
            let body = selector_body(&ts);
            let Payload::Id(id) = Payload::parse(PayloadType::ID, &body).unwrap() else {
                panic!()
            };
            assert_eq!(selector_of(&id), Some(ts), "{ts}");
        }
        assert_eq!(
            selector_body(&net("10.1.0.0/24"))[0],
            4,
            "ID_IPV4_ADDR_SUBNET"
        );
    }

    #[test]
    fn walk_keeps_raw_bytes_and_ignores_padding() {
        let mut c = chain(&[
            (PayloadType::HASH, &[1, 2, 3]),
            (PayloadType::NONCE, &[9; 16]),
        ]);
        let len = c.len();
        c.extend_from_slice(&[0; 5]);
        let w = walk(PayloadType::HASH, &c).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].body, &[1, 2, 3]);
        assert_eq!(w[1].ty, PayloadType::NONCE);
        assert_eq!(w[0].whole.len() + w[1].whole.len(), len);
        assert!(walk(PayloadType::HASH, &c[..6]).is_none());
    }
}
