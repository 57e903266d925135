//! Choosing what a Child SA is made of: the policy and proposal a responder selects from an
//! offer (IKE_AUTH or CREATE_CHILD_SA), and the proposals we offer (SPI set, KE left out).

use super::*;

/// The proposals without KE and ADDKE transforms (IKE_AUTH, §1.2), each once: proposals
/// that differed only in those (an optional additional key exchange offered with and
/// without ADDKE) become one.
pub(super) fn strip_ke(ps: &[Proposal]) -> Vec<Proposal> {
    let mut out: Vec<Proposal> = Vec::with_capacity(ps.len());
    for p in ps {
        let q = Proposal {
            protocol: p.protocol,
            spi: p.spi.clone(),
            transforms: p
                .transforms
                .iter()
                .filter(|t| t.ty != TransformType::KE && proposal::addke_slot(t.ty).is_none())
                .copied()
                .collect(),
        };
        if !out.contains(&q) {
            out.push(q);
        }
    }
    out
}

/// What a responder chose for a Child SA: the policy, the narrowed selectors, the proposal.
#[derive(Debug)]
pub(super) struct ChildChoice {
    pub(super) policy: PolicyId,
    pub(super) narrowed: Narrowed,
    pub(super) sel: Selected,
}

/// Responder: the policy and proposal for a Child SA the peer asks for (in IKE_AUTH or
/// CREATE_CHILD_SA).
///
/// The traffic selectors decide the policy, and only that policy's proposals (its tunnel's
/// IPSec crypto profile) are then considered: IKE_AUTH carries the SA payload beside the TS,
/// but selecting from every tunnel's proposals first would let a tunnel come up with another
/// tunnel's algorithms. When the selectors intersect several policies, the first whose
/// proposals accept the offer wins. `only` restricts the choice to one policy (a rekey keeps
/// the policy of the Child SA it replaces). In IKE_AUTH (`ike_auth`) KE transforms are left
/// out of our proposals and ignored in the offer (§1.2).
///
/// With addresses a configuration payload assigned (R-V2-12), each policy's side they belong
/// to is narrowed to them first ([`Core::policy_ts`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn select_child(
    sa: &IkeSa,
    cfg: &PeerConfig,
    offered: &[(u8, Proposal)],
    tsi: &TsSet,
    tsr: &TsSet,
    only: Option<PolicyId>,
    ike_auth: bool,
) -> Result<ChildChoice, Failure> {
    let policies: Vec<&ChildPolicy> = match only {
        Some(id) => cfg.policy(id).into_iter().collect(),
        None => cfg.policies.iter().collect(),
    };
    let selectors: Vec<std::borrow::Cow<'_, ts::TsPolicy>> = policies
        .iter()
        .map(|p| Core::policy_ts(sa, &p.ts))
        .collect();
    let candidates = ts::matching_policies(tsi, tsr, selectors.iter().map(|p| &**p))
        .map_err(Failure::TsUnacceptable)?;
    let opts = SelectOptions {
        ignore_ke: ike_auth,
    };
    let mut refused = Vec::new();
    for (pos, narrowed) in candidates {
        let p = policies[pos];
        let policy = p.id;
        let ours = if ike_auth {
            strip_ke(&p.proposals)
        } else {
            p.proposals.clone()
        };
        match proposal::select(offered, &ours, opts) {
            Ok(sel) => {
                return Ok(ChildChoice {
                    policy,
                    narrowed,
                    sel,
                });
            }
            Err(e) => refused.push((p.name().to_owned(), e)),
        }
    }
    let mut refused = refused.into_iter();
    let (policy, error) = refused.next().ok_or(Failure::Local(LocalError::NoPolicy))?;
    Err(Failure::ChildNoProposalChosen {
        policy,
        error,
        also: refused.map(|(n, _)| n).collect(),
    })
}

pub(super) fn with_spi(ps: &[Proposal], spi: Spi) -> Vec<Proposal> {
    ps.iter()
        .map(|p| Proposal {
            spi: spi.0.to_be_bytes().to_vec(),
            ..p.clone()
        })
        .collect()
}
