//! Proposals and their selection (RFC 7296 §2.7, §3.3).
//!
//! A [`Proposal`] is a protocol (IKE, ESP, AH) and a list of transforms; several transforms of
//! one type mean "any of these". The responder walks the initiator's proposals in the
//! initiator's order and takes the first that one of our configured proposals accepts
//! ([`select`]); inside it, for each transform type, the first of the initiator's transforms
//! that our proposal lists. The answer carries one transform per type ([`Selected`]). The
//! initiator checks that the answer is a subset of one of its proposals ([`check_answer`]).
//!
//! When nothing matches, [`NoProposalChosen`] says in plain words what the peer offered and
//! what we accept, e.g. `peer offered AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024; we
//! accept AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256`.

use std::fmt;

use ferrosec_wire::ikev2::{
    self, DhGroup, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType,
};
use ferrosec_wire::{AttrValue, DataAttribute};

/// One transform: type, IANA ID and the Key Length attribute (bits) if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transform {
    /// Transform Type.
    pub ty: TransformType,
    /// Transform ID.
    pub id: u16,
    /// Key Length attribute in bits (ENCR with variable key size).
    pub key_len: Option<u16>,
}

impl Transform {
    /// An ENCR transform.
    pub fn encr(id: EncrId, key_len: Option<u16>) -> Self {
        Transform {
            ty: TransformType::ENCR,
            id: id.0,
            key_len,
        }
    }

    /// A PRF transform.
    pub fn prf(id: PrfId) -> Self {
        Transform {
            ty: TransformType::PRF,
            id: id.0,
            key_len: None,
        }
    }

    /// An INTEG transform.
    pub fn integ(id: IntegId) -> Self {
        Transform {
            ty: TransformType::INTEG,
            id: id.0,
            key_len: None,
        }
    }

    /// A KE (DH group) transform.
    pub fn ke(id: DhGroup) -> Self {
        Transform {
            ty: TransformType::KE,
            id: id.0,
            key_len: None,
        }
    }

    /// An ESN transform.
    /// Additional Key Exchange `slot` (1-7, transform type 5 + slot) of method `id` (RFC 9370
    /// §2.2.1); `DhGroup::NONE` makes that slot optional.
    pub fn addke(slot: usize, id: DhGroup) -> Self {
        Transform {
            ty: addke_type(slot - 1),
            id: id.0,
            key_len: None,
        }
    }

    /// An ESN transform.
    pub fn esn(id: EsnId) -> Self {
        Transform {
            ty: TransformType::ESN,
            id: id.0,
            key_len: None,
        }
    }

    /// The wire form.
    pub fn to_wire(&self) -> ikev2::Transform<'static> {
        let mut t = ikev2::Transform::encr(EncrId(self.id), self.key_len);
        t.ty = self.ty;
        t
    }

    /// From the wire form. `None` if the transform carries an attribute other than a TV Key
    /// Length: §3.3.6 says such a transform MUST be rejected.
    //= https://www.rfc-editor.org/rfc/rfc7296#section-3.3.6
    //# If the transform contains an attribute it doesn't understand, it MUST reject that
    //# transform.
    pub fn from_wire(t: &ikev2::Transform<'_>) -> Option<Self> {
        let mut key_len = None;
        for a in &t.attributes {
            match a {
                DataAttribute {
                    ty,
                    value: AttrValue::Basic(v),
                } if *ty == ikev2::TransformAttrType::KEY_LENGTH.0 && key_len.is_none() => {
                    key_len = Some(*v);
                }
                _ => return None,
            }
        }
        Some(Transform {
            ty: t.ty,
            id: t.id,
            key_len,
        })
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ty {
            TransformType::ENCR => {
                write!(f, "{}", EncrId(self.id))?;
                if let Some(k) = self.key_len {
                    write!(f, "_{k}")?;
                }
                Ok(())
            }
            TransformType::PRF => write!(f, "PRF_{}", PrfId(self.id)),
            TransformType::INTEG => write!(f, "{}", IntegId(self.id)),
            TransformType::KE => write!(f, "{}", DhGroup(self.id)),
            TransformType::ESN => write!(f, "{}", EsnId(self.id)),
            ty if addke_slot(ty).is_some() => {
                write!(f, "KE{}_{}", ty.0 - 5, DhGroup(self.id))
            }
            ty => write!(f, "{ty}:{}", self.id),
        }
    }
}

/// The transform type of Additional Key Exchange `index` + 1 (RFC 9370: types 6-12).
pub fn addke_type(index: usize) -> TransformType {
    TransformType(6 + u8::try_from(index.min(6)).unwrap_or(6))
}

/// The index (0-6) of an Additional Key Exchange transform type, `None` for other types.
pub fn addke_slot(ty: TransformType) -> Option<usize> {
    (6..=12).contains(&ty.0).then(|| usize::from(ty.0 - 6))
}

/// Whether an ENCR transform ID is a combined-mode (AEAD) cipher, which takes no INTEG
/// transform (RFC 5282 §8).
pub fn is_aead(encr: EncrId) -> bool {
    matches!(
        encr,
        EncrId::AES_CCM_8
            | EncrId::AES_CCM_12
            | EncrId::AES_CCM_16
            | EncrId::AES_GCM_8
            | EncrId::AES_GCM_12
            | EncrId::AES_GCM_16
            | EncrId::NULL_AUTH_AES_GMAC
            | EncrId::CAMELLIA_CCM_8
            | EncrId::CAMELLIA_CCM_12
            | EncrId::CAMELLIA_CCM_16
            | EncrId::CHACHA20_POLY1305
    )
}

/// A proposal: protocol, SPI, and transforms (several of a type = alternatives).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// IKE, ESP or AH.
    pub protocol: ProtocolId,
    /// The SPI: empty in IKE_SA_INIT, 8 bytes in an IKE rekey, 4 for ESP/AH.
    pub spi: Vec<u8>,
    /// The transforms, in order of preference.
    pub transforms: Vec<Transform>,
}

impl Proposal {
    /// A proposal of `protocol` with these transforms and no SPI.
    pub fn new(protocol: ProtocolId, transforms: Vec<Transform>) -> Self {
        Proposal {
            protocol,
            spi: Vec::new(),
            transforms,
        }
    }

    /// The transforms of one type, in order.
    pub fn of_type(&self, ty: TransformType) -> impl Iterator<Item = &Transform> {
        self.transforms.iter().filter(move |t| t.ty == ty)
    }

    /// The wire form with Proposal Num `number`.
    pub fn to_wire(&self, number: u8) -> ikev2::Proposal<'_> {
        ikev2::Proposal {
            number,
            protocol: self.protocol,
            spi: &self.spi,
            transforms: self.transforms.iter().map(Transform::to_wire).collect(),
        }
    }

    /// From the wire form; `None` if a transform must be rejected (§3.3.6), which makes the
    /// whole proposal unacceptable only for the types that had no other choice — we keep it
    /// simple and drop just that transform.
    pub fn from_wire(p: &ikev2::Proposal<'_>) -> Self {
        Proposal {
            protocol: p.protocol,
            spi: p.spi.to_vec(),
            transforms: p
                .transforms
                .iter()
                .filter_map(Transform::from_wire)
                .collect(),
        }
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Group by type in the conventional order: ENCR/INTEG/PRF/KE/ESN.
        let order = [
            TransformType::ENCR,
            TransformType::INTEG,
            TransformType::PRF,
            TransformType::KE,
            TransformType::ADDKE1,
            TransformType::ADDKE2,
            TransformType::ADDKE3,
            TransformType::ADDKE4,
            TransformType::ADDKE5,
            TransformType::ADDKE6,
            TransformType::ADDKE7,
            TransformType::ESN,
        ];
        let mut first = true;
        let mut types: Vec<TransformType> = order.to_vec();
        for t in &self.transforms {
            if !types.contains(&t.ty) {
                types.push(t.ty);
            }
        }
        for ty in types {
            let names: Vec<String> = self.of_type(ty).map(ToString::to_string).collect();
            if names.is_empty() {
                continue;
            }
            if !first {
                f.write_str("/")?;
            }
            first = false;
            f.write_str(&names.join("|"))?;
        }
        if first {
            f.write_str("(no transforms)")?;
        }
        Ok(())
    }
}

/// A negotiated proposal: one transform of each type present.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selected {
    /// The Proposal Num of the initiator's proposal (echoed in the answer).
    pub number: u8,
    /// IKE, ESP or AH.
    pub protocol: ProtocolId,
    /// The initiator's SPI from its proposal (the answer carries the responder's own).
    pub spi: Vec<u8>,
    /// Encryption and its key length (absent for AH).
    pub encr: Option<(EncrId, Option<u16>)>,
    /// PRF (IKE only).
    pub prf: Option<PrfId>,
    /// Integrity (absent with an AEAD cipher).
    pub integ: Option<IntegId>,
    /// Key exchange method (absent for a Child SA without PFS).
    pub ke: Option<DhGroup>,
    /// Additional key exchanges 1-7 (RFC 9370), `DhGroup::NONE` where there is none; done in
    /// IKE_INTERMEDIATE exchanges after IKE_SA_INIT, in this order.
    pub addke: [DhGroup; 7],
    /// Extended sequence numbers (ESP/AH).
    pub esn: Option<EsnId>,
}

impl Selected {
    /// As a proposal with one transform per type.
    pub fn to_proposal(&self, spi: Vec<u8>) -> Proposal {
        let mut transforms = Vec::new();
        if let Some((e, k)) = self.encr {
            transforms.push(Transform::encr(e, k));
        }
        if let Some(p) = self.prf {
            transforms.push(Transform::prf(p));
        }
        if let Some(i) = self.integ {
            transforms.push(Transform::integ(i));
        }
        if let Some(g) = self.ke {
            transforms.push(Transform::ke(g));
        }
        for (i, g) in self.addke.iter().enumerate() {
            if *g != DhGroup::NONE {
                transforms.push(Transform::addke(i + 1, *g));
            }
        }
        if let Some(e) = self.esn {
            transforms.push(Transform::esn(e));
        }
        Proposal {
            protocol: self.protocol,
            spi,
            transforms,
        }
    }
}

impl Selected {
    /// The additional key exchanges to run, in order (RFC 9370 §2.2.2).
    pub fn additional(&self) -> impl Iterator<Item = DhGroup> + '_ {
        self.addke.iter().copied().filter(|g| *g != DhGroup::NONE)
    }
}

impl fmt::Display for Selected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_proposal(Vec::new()), f)
    }
}

/// NO_PROPOSAL_CHOSEN, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no proposal chosen: peer offered {}; we accept {}", list(.offered), list(.ours))]
pub struct NoProposalChosen {
    /// The peer's proposals.
    pub offered: Vec<Proposal>,
    /// Ours.
    pub ours: Vec<Proposal>,
}

/// The peer answered NO_PROPOSAL_CHOSEN to our offer: what we offered, in words (the peer
/// does not say what it would accept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no proposal chosen by the peer: we offered {}; the peer accepts none of them (compare its \
     crypto profile with ours)",
    list(.offered)
)]
pub struct OfferRefused {
    /// Our proposals.
    pub offered: Vec<Proposal>,
}

/// Proposals in words, as the failure messages show them (`ESP: AES_GCM_16_256/NO_ESN, …`).
pub fn describe(ps: &[Proposal]) -> String {
    list(ps)
}

fn list(ps: &[Proposal]) -> String {
    if ps.is_empty() {
        return "nothing".into();
    }
    ps.iter()
        .map(|p| format!("{} {p}", protocol_name(p.protocol)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn protocol_name(p: ProtocolId) -> String {
    match p {
        ProtocolId::IKE => "IKE:".into(),
        ProtocolId::ESP => "ESP:".into(),
        ProtocolId::AH => "AH:".into(),
        p => format!("{p}:"),
    }
}

/// Options for [`select`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SelectOptions {
    /// Ignore KE (and RFC 9370 ADDKE) transforms of the offer: the Child SA proposals in IKE_AUTH have no key
    /// exchange (§1.2: "cannot contain Transform Type 4 … with any value other than NONE").
    pub ignore_ke: bool,
}

/// Responder: the first of `offered` (in the peer's order) that one of `ours` accepts.
///
/// `offered` are `(Proposal Num, proposal)` pairs as received.
pub fn select(
    offered: &[(u8, Proposal)],
    ours: &[Proposal],
    opts: SelectOptions,
) -> Result<Selected, NoProposalChosen> {
    for (number, theirs) in offered {
        for mine in ours {
            if let Some(s) = match_one(*number, theirs, mine, opts) {
                return Ok(s);
            }
        }
    }
    Err(NoProposalChosen {
        offered: offered.iter().map(|(_, p)| p.clone()).collect(),
        ours: ours.to_vec(),
    })
}

fn known_type(ty: TransformType) -> bool {
    matches!(
        ty,
        TransformType::ENCR
            | TransformType::PRF
            | TransformType::INTEG
            | TransformType::KE
            | TransformType::ESN
    ) || addke_slot(ty).is_some()
}

/// The first of `theirs` that `mine` lists.
fn pick(theirs: &Proposal, mine: &Proposal, ty: TransformType) -> Option<Transform> {
    theirs
        .of_type(ty)
        .find(|t| mine.of_type(ty).any(|m| m == *t))
        .copied()
}

fn match_one(
    number: u8,
    theirs: &Proposal,
    mine: &Proposal,
    opts: SelectOptions,
) -> Option<Selected> {
    if theirs.protocol != mine.protocol {
        return None;
    }
    //= https://www.rfc-editor.org/rfc/rfc7296#section-3.3.6
    //# If the responder receives a proposal that contains a Transform Type it does not
    //# understand, or a proposal that is missing a mandatory Transform Type, it MUST
    //# consider this proposal unacceptable
    if theirs.transforms.iter().any(|t| !known_type(t.ty)) {
        return None;
    }
    let protocol = theirs.protocol;
    let has = |ty| theirs.of_type(ty).next().is_some();
    let encr = if protocol == ProtocolId::AH {
        None
    } else {
        Some(pick(theirs, mine, TransformType::ENCR)?)
    };
    let aead = encr.is_some_and(|e| is_aead(EncrId(e.id)));
    let prf = if protocol == ProtocolId::IKE {
        Some(pick(theirs, mine, TransformType::PRF)?)
    } else {
        None
    };
    // AEAD: no INTEG, or only NONE. Otherwise INTEG is mandatory (IKE, AH) and must not be
    // NONE; for ESP with a non-AEAD cipher it is mandatory too (we never negotiate ESP without
    // integrity).
    let integ = if aead {
        if theirs
            .of_type(TransformType::INTEG)
            .any(|t| t.id != IntegId::NONE.0)
        {
            // RFC 5282 §8: an AEAD proposal must not carry an integrity transform.
            return None;
        }
        None
    } else {
        let t = theirs
            .of_type(TransformType::INTEG)
            .filter(|t| t.id != IntegId::NONE.0)
            .find(|t| mine.of_type(TransformType::INTEG).any(|m| m == *t))?;
        Some(IntegId(t.id))
    };
    let ke = if opts.ignore_ke {
        None
    } else if protocol == ProtocolId::IKE {
        Some(DhGroup(pick(theirs, mine, TransformType::KE)?.id))
    } else {
        // Child SA: PFS if both sides name a group; "no PFS" if both allow none.
        let mine_none = mine
            .of_type(TransformType::KE)
            .all(|t| t.id == DhGroup::NONE.0);
        let theirs_none = theirs
            .of_type(TransformType::KE)
            .all(|t| t.id == DhGroup::NONE.0);
        match pick(theirs, mine, TransformType::KE) {
            Some(t) if t.id != DhGroup::NONE.0 => Some(DhGroup(t.id)),
            Some(_) => None,
            None if mine_none && theirs_none => None,
            None => return None,
        }
    };
    //= https://www.rfc-editor.org/rfc/rfc9370#section-2.2.1
    //# If the responder selects NONE for some Additional Key Exchange types
    //# (provided they are proposed by the initiator), then any corresponding
    //# IKE_INTERMEDIATE exchanges MUST NOT take place.
    let mut addke = [DhGroup::NONE; 7];
    if !opts.ignore_ke {
        for (i, slot) in addke.iter_mut().enumerate() {
            *slot = pick_addke(theirs, mine, addke_type(i))?;
        }
    }
    let esn = if protocol == ProtocolId::IKE {
        if has(TransformType::ESN) {
            return None;
        }
        None
    } else {
        Some(EsnId(pick(theirs, mine, TransformType::ESN)?.id))
    };
    Some(Selected {
        number,
        protocol,
        spi: theirs.spi.clone(),
        encr: encr.map(|e| (EncrId(e.id), e.key_len)),
        prf: prf.map(|p| PrfId(p.id)),
        integ,
        ke,
        addke,
        esn,
    })
}

/// One Additional Key Exchange type: the first method of `theirs` that `mine` lists; NONE when
/// both sides allow it (list NONE or nothing of the type); otherwise unacceptable.
fn pick_addke(theirs: &Proposal, mine: &Proposal, ty: TransformType) -> Option<DhGroup> {
    if let Some(t) = pick(theirs, mine, ty) {
        return Some(DhGroup(t.id));
    }
    let allows_none = |p: &Proposal| {
        let mut it = p.of_type(ty).peekable();
        it.peek().is_none() || p.of_type(ty).any(|t| t.id == DhGroup::NONE.0)
    };
    (allows_none(theirs) && allows_none(mine)).then_some(DhGroup::NONE)
}

/// Why the responder's answer is not acceptable to the initiator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer chose {answer}, which is not one of our proposals ({})", list(.offered))]
pub struct BadAnswer {
    /// What the peer answered.
    pub answer: Proposal,
    /// What we offered.
    pub offered: Vec<Proposal>,
}

/// Initiator: the answer must have exactly one transform per type, all taken from one of our
/// proposals. Returns the selection.
pub fn check_answer(
    offered: &[Proposal],
    answer_number: u8,
    answer: &Proposal,
    opts: SelectOptions,
) -> Result<Selected, BadAnswer> {
    let bad = || BadAnswer {
        answer: answer.clone(),
        offered: offered.to_vec(),
    };
    for ty in [
        TransformType::ENCR,
        TransformType::PRF,
        TransformType::INTEG,
        TransformType::KE,
        TransformType::ESN,
        TransformType::ADDKE1,
        TransformType::ADDKE2,
        TransformType::ADDKE3,
        TransformType::ADDKE4,
        TransformType::ADDKE5,
        TransformType::ADDKE6,
        TransformType::ADDKE7,
    ] {
        if answer.of_type(ty).count() > 1 {
            return Err(bad());
        }
    }
    // Prefer the proposal with the echoed number, then any that fits.
    let idx = usize::from(answer_number).wrapping_sub(1);
    let candidates = offered.get(idx).into_iter().chain(offered.iter());
    for mine in candidates {
        if let Some(mut s) = match_one(answer_number, answer, mine, opts) {
            // Every transform of the answer must be one we offered (match_one already
            // ensures that for each chosen type; reject unchosen extras).
            let chosen = s.to_proposal(Vec::new());
            let unchosen = |t: &&Transform| {
                let ke_like = t.ty == TransformType::KE || addke_slot(t.ty).is_some();
                let none = (t.ty == TransformType::INTEG || ke_like) && t.id == 0;
                let ignored = opts.ignore_ke && ke_like;
                !none && !ignored && !chosen.transforms.contains(t)
            };
            if answer.transforms.iter().any(|t| unchosen(&t)) {
                continue;
            }
            s.spi = answer.spi.clone();
            return Ok(s);
        }
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike(
        encr: (EncrId, Option<u16>),
        integ: Option<IntegId>,
        prf: PrfId,
        ke: DhGroup,
    ) -> Proposal {
        let mut t = vec![Transform::encr(encr.0, encr.1)];
        if let Some(i) = integ {
            t.push(Transform::integ(i));
        }
        t.push(Transform::prf(prf));
        t.push(Transform::ke(ke));
        Proposal::new(ProtocolId::IKE, t)
    }

    fn esp(encr: (EncrId, Option<u16>), integ: Option<IntegId>, ke: Option<DhGroup>) -> Proposal {
        let mut t = vec![Transform::encr(encr.0, encr.1)];
        if let Some(i) = integ {
            t.push(Transform::integ(i));
        }
        if let Some(g) = ke {
            t.push(Transform::ke(g));
        }
        t.push(Transform::esn(EsnId::NO_ESN));
        Proposal::new(ProtocolId::ESP, t)
    }

    fn numbered(ps: &[Proposal]) -> Vec<(u8, Proposal)> {
        ps.iter()
            .enumerate()
            .map(|(i, p)| (u8::try_from(i + 1).unwrap(), p.clone()))
            .collect()
    }

    const CBC128: (EncrId, Option<u16>) = (EncrId::AES_CBC, Some(128));
    const CBC256: (EncrId, Option<u16>) = (EncrId::AES_CBC, Some(256));
    const GCM256: (EncrId, Option<u16>) = (EncrId::AES_GCM_16, Some(256));

    #[test]
    fn first_of_the_initiators_proposals_wins() {
        let theirs = [
            ike(
                CBC128,
                Some(IntegId::HMAC_SHA1_96),
                PrfId::HMAC_SHA1,
                DhGroup::MODP_1024,
            ),
            ike(
                CBC256,
                Some(IntegId::HMAC_SHA2_256_128),
                PrfId::HMAC_SHA2_256,
                DhGroup::ECP_256,
            ),
            ike(GCM256, None, PrfId::HMAC_SHA2_256, DhGroup::CURVE25519),
        ];
        let ours = [
            ike(GCM256, None, PrfId::HMAC_SHA2_256, DhGroup::CURVE25519),
            ike(
                CBC256,
                Some(IntegId::HMAC_SHA2_256_128),
                PrfId::HMAC_SHA2_256,
                DhGroup::ECP_256,
            ),
        ];
        let s = select(&numbered(&theirs), &ours, SelectOptions::default()).unwrap();
        assert_eq!(s.number, 2);
        assert_eq!(s.encr, Some(CBC256));
        assert_eq!(s.integ, Some(IntegId::HMAC_SHA2_256_128));
        assert_eq!(s.prf, Some(PrfId::HMAC_SHA2_256));
        assert_eq!(s.ke, Some(DhGroup::ECP_256));
        assert_eq!(s.esn, None);
    }

    #[test]
    fn within_a_proposal_the_initiators_transform_order_wins() {
        let theirs = Proposal::new(
            ProtocolId::IKE,
            vec![
                Transform::encr(EncrId::AES_CBC, Some(128)),
                Transform::encr(EncrId::AES_CBC, Some(256)),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                Transform::prf(PrfId::HMAC_SHA2_256),
                Transform::ke(DhGroup::MODP_2048),
                Transform::ke(DhGroup::ECP_256),
            ],
        );
        let ours = Proposal::new(
            ProtocolId::IKE,
            vec![
                Transform::encr(EncrId::AES_CBC, Some(256)),
                Transform::encr(EncrId::AES_CBC, Some(128)),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                Transform::prf(PrfId::HMAC_SHA2_256),
                Transform::ke(DhGroup::ECP_256),
                Transform::ke(DhGroup::MODP_2048),
            ],
        );
        let s = select(&[(1, theirs)], &[ours], SelectOptions::default()).unwrap();
        assert_eq!(s.encr, Some(CBC128));
        assert_eq!(s.ke, Some(DhGroup::MODP_2048));
    }

    #[test]
    fn key_length_must_match() {
        let theirs = [ike(
            CBC128,
            Some(IntegId::HMAC_SHA2_256_128),
            PrfId::HMAC_SHA2_256,
            DhGroup::ECP_256,
        )];
        let ours = [ike(
            CBC256,
            Some(IntegId::HMAC_SHA2_256_128),
            PrfId::HMAC_SHA2_256,
            DhGroup::ECP_256,
        )];
        assert!(select(&numbered(&theirs), &ours, SelectOptions::default()).is_err());
    }

    #[test]
    fn failure_explains_in_plain_words() {
        let theirs = [ike(
            CBC128,
            Some(IntegId::HMAC_SHA1_96),
            PrfId::HMAC_SHA1,
            DhGroup::MODP_1024,
        )];
        let ours = [ike(GCM256, None, PrfId::HMAC_SHA2_256, DhGroup::ECP_256)];
        let err = select(&numbered(&theirs), &ours, SelectOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no proposal chosen: peer offered IKE: AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024; \
             we accept IKE: AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256"
        );
    }

    #[test]
    fn aead_with_integrity_is_refused() {
        let bad = Proposal::new(
            ProtocolId::ESP,
            vec![
                Transform::encr(EncrId::AES_GCM_16, Some(256)),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                Transform::esn(EsnId::NO_ESN),
            ],
        );
        let ours = [
            esp(GCM256, None, None),
            Proposal::new(ProtocolId::ESP, bad.transforms.clone()),
        ];
        assert!(select(&[(1, bad)], &ours, SelectOptions::default()).is_err());
        // AEAD with INTEG NONE is fine and yields no integrity.
        let ok = Proposal::new(
            ProtocolId::ESP,
            vec![
                Transform::encr(EncrId::AES_GCM_16, Some(256)),
                Transform::integ(IntegId::NONE),
                Transform::esn(EsnId::NO_ESN),
            ],
        );
        let s = select(&[(1, ok)], &ours, SelectOptions::default()).unwrap();
        assert_eq!(s.integ, None);
        assert_eq!(s.esn, Some(EsnId::NO_ESN));
    }

    #[test]
    fn non_aead_needs_integrity() {
        let theirs = esp(CBC128, None, None);
        let ours = [
            esp(CBC128, Some(IntegId::HMAC_SHA2_256_128), None),
            esp(CBC128, None, None),
        ];
        assert!(select(&[(1, theirs)], &ours, SelectOptions::default()).is_err());
    }

    #[test]
    fn unknown_transform_type_makes_the_proposal_unacceptable() {
        let mut theirs = esp(GCM256, None, None);
        theirs.transforms.push(Transform {
            ty: TransformType(200),
            id: 1,
            key_len: None,
        });
        assert!(
            select(
                &[(1, theirs)],
                &[esp(GCM256, None, None)],
                SelectOptions::default()
            )
            .is_err()
        );
    }

    #[test]
    fn pfs_groups() {
        let ours = [esp(GCM256, None, Some(DhGroup::ECP_256))];
        // Peer wants PFS with the same group.
        let s = select(
            &[(1, esp(GCM256, None, Some(DhGroup::ECP_256)))],
            &ours,
            SelectOptions::default(),
        )
        .unwrap();
        assert_eq!(s.ke, Some(DhGroup::ECP_256));
        // Peer offers no PFS but we require it.
        assert!(
            select(
                &[(1, esp(GCM256, None, None))],
                &ours,
                SelectOptions::default()
            )
            .is_err()
        );
        // In IKE_AUTH the KE transforms are ignored.
        let s = select(
            &[(1, esp(GCM256, None, None))],
            &ours,
            SelectOptions { ignore_ke: true },
        )
        .unwrap();
        assert_eq!(s.ke, None);
        // Neither side wants PFS.
        let s = select(
            &[(1, esp(GCM256, None, None))],
            &[esp(GCM256, None, None)],
            SelectOptions::default(),
        )
        .unwrap();
        assert_eq!(s.ke, None);
    }

    #[test]
    fn ah_has_no_encryption() {
        let ah = Proposal::new(
            ProtocolId::AH,
            vec![
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                Transform::esn(EsnId::NO_ESN),
            ],
        );
        let s = select(&[(1, ah.clone())], &[ah], SelectOptions::default()).unwrap();
        assert_eq!(s.encr, None);
        assert_eq!(s.integ, Some(IntegId::HMAC_SHA2_256_128));
        // ESP offer does not match an AH policy.
        assert!(
            select(
                &[(1, esp(GCM256, None, None))],
                &[Proposal::new(ProtocolId::AH, vec![])],
                SelectOptions::default()
            )
            .is_err()
        );
    }

    #[test]
    fn initiator_checks_the_answer() {
        let ours = [
            ike(GCM256, None, PrfId::HMAC_SHA2_256, DhGroup::CURVE25519),
            ike(
                CBC256,
                Some(IntegId::HMAC_SHA2_256_128),
                PrfId::HMAC_SHA2_256,
                DhGroup::ECP_256,
            ),
        ];
        let s = select(&numbered(&ours), &ours[1..], SelectOptions::default()).unwrap();
        let answer = s.to_proposal(Vec::new());
        let back = check_answer(&ours, s.number, &answer, SelectOptions::default()).unwrap();
        assert_eq!(back, s);
        // A transform we never offered.
        let mut evil = answer.clone();
        evil.transforms[0] = Transform::encr(EncrId::TRIPLE_DES, None);
        assert!(check_answer(&ours, 2, &evil, SelectOptions::default()).is_err());
        // Two transforms of one type.
        let mut two = answer;
        two.transforms.push(Transform::ke(DhGroup::ECP_256));
        assert!(check_answer(&ours, 2, &two, SelectOptions::default()).is_err());
    }

    #[test]
    fn wire_round_trip_and_bad_attributes() {
        let p = ike(
            CBC256,
            Some(IntegId::HMAC_SHA2_256_128),
            PrfId::HMAC_SHA2_256,
            DhGroup::ECP_256,
        );
        let w = p.to_wire(1);
        assert_eq!(Proposal::from_wire(&w), p);
        let mut wt = Transform::encr(EncrId::AES_CBC, Some(128)).to_wire();
        wt.attributes
            .push(DataAttribute::basic(ikev2::TransformAttrType(99), 1));
        assert_eq!(Transform::from_wire(&wt), None);
    }

    fn with_addke(mut p: Proposal, slot1: &[DhGroup]) -> Proposal {
        for g in slot1 {
            p.transforms.push(Transform::addke(1, *g));
        }
        p
    }

    /// RFC 9370 §2.2.1: ADDKE types are selected like PFS groups: a common method, NONE when
    /// both allow it, otherwise no proposal — and the failure names the ADDKE transforms.
    #[test]
    fn additional_key_exchanges_are_selected_per_type_and_named_in_failures() {
        let base = || {
            ike(
                (EncrId::AES_GCM_16, Some(256)),
                None,
                PrfId::HMAC_SHA2_256,
                DhGroup::CURVE25519,
            )
        };
        let required = with_addke(base(), &[DhGroup::ML_KEM_768]);
        let optional = with_addke(base(), &[DhGroup::ML_KEM_768, DhGroup::NONE]);
        let plain = base();
        let sel = |offer: &Proposal, ours: &Proposal| {
            select(
                &numbered(std::slice::from_ref(offer)),
                std::slice::from_ref(ours),
                SelectOptions::default(),
            )
        };
        // Both want ML-KEM-768.
        let s = sel(&required, &required).unwrap();
        assert_eq!(s.addke[0], DhGroup::ML_KEM_768);
        assert_eq!(s.additional().collect::<Vec<_>>(), [DhGroup::ML_KEM_768]);
        assert!(s.to_string().contains("KE1_ML_KEM_768"), "{s}");
        // Optional on one side, supported on the other: it is used.
        assert_eq!(
            sel(&optional, &required).unwrap().addke[0],
            DhGroup::ML_KEM_768
        );
        // Optional offered to a responder without ADDKE: none.
        assert_eq!(sel(&optional, &plain).unwrap().additional().count(), 0);
        assert_eq!(sel(&plain, &optional).unwrap().additional().count(), 0);
        // Required against a peer without ADDKE, either way round: no proposal, in words.
        for (offer, ours) in [(&plain, &required), (&required, &plain)] {
            let e = sel(offer, ours).unwrap_err().to_string();
            assert!(e.contains("KE1_ML_KEM_768"), "{e}");
        }
        // A different method in the slot.
        let other = with_addke(base(), &[DhGroup::ML_KEM_1024]);
        assert!(sel(&other, &required).is_err());
        // The initiator checks the answer: a required ADDKE left out is a bad answer; an
        // answer of the chosen method is fine; an optional one left out is fine.
        let answer = sel(&required, &required).unwrap().to_proposal(Vec::new());
        assert!(
            check_answer(
                std::slice::from_ref(&required),
                1,
                &answer,
                SelectOptions::default()
            )
            .is_ok()
        );
        assert!(
            check_answer(
                std::slice::from_ref(&required),
                1,
                &plain,
                SelectOptions::default()
            )
            .is_err()
        );
        let s = check_answer(
            std::slice::from_ref(&optional),
            1,
            &plain,
            SelectOptions::default(),
        )
        .unwrap();
        assert_eq!(s.additional().count(), 0);
        // IKE_AUTH's Child SA selection ignores them like KE.
        let opts = SelectOptions { ignore_ke: true };
        assert_eq!(
            select(
                &numbered(std::slice::from_ref(&required)),
                std::slice::from_ref(&plain),
                opts
            )
            .unwrap()
            .additional()
            .count(),
            0
        );
    }
}
