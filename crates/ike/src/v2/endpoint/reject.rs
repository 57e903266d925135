//! The one wire decision for a request we refuse (RFC 7296 §2.21): every reason the
//! exchanges refuse for maps here, and only here, to the error notify the peer gets (and its
//! data). The exchanges name the reason; they never pick a notify type themselves.

use super::*;

/// Why we refuse a request, in the terms that decide the answer on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Missing or malformed payloads, values out of range (§3.10.1 INVALID_SYNTAX).
    Malformed,
    /// A critical payload we do not know (§2.5).
    UnsupportedCritical,
    /// No acceptable proposal, or a Child SA we cannot make from what was chosen.
    NoProposal,
    /// The KE payload is not of the group we chose; the group we want (§1.2, §1.3.1).
    WrongGroup(DhGroup),
    /// Traffic selectors that match no policy (§2.9).
    TsUnacceptable,
    /// The AUTH payload or the identity does not verify (§2.21.2).
    AuthFailed,
    /// Another exchange on the SA is in the way, try again (§2.25).
    Busy,
    /// The Child SA to rekey is not ours (§2.25).
    ChildNotFound,
    /// No more Child SAs on this IKE SA.
    NoAdditionalSas,
    /// A request for an IKE SA we do not have (§2.21.4), answered unprotected.
    UnknownIkeSa,
    /// A major version above ours (§2.5): the answer names 2.0.
    MajorVersion,
    /// No internal address could be assigned (§3.10.1, R-V2-12).
    AddressFailure,
    /// A configuration payload is required and absent (§3.10.1, R-V2-12).
    CpRequired,
    /// An IKE_FOLLOWUP_KE request for an additional key exchange we hold no state for, or
    /// with the wrong link (RFC 9370 §2.2.4).
    StateNotFound,
}

impl Rejection {
    /// The error notify for it, with its data.
    pub(crate) fn notify(self) -> (NotifyType, Vec<u8>) {
        match self {
            Rejection::Malformed => (NotifyType::INVALID_SYNTAX, Vec::new()),
            Rejection::UnsupportedCritical => {
                (NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, Vec::new())
            }
            Rejection::NoProposal => (NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()),
            Rejection::WrongGroup(g) => {
                (NotifyType::INVALID_KE_PAYLOAD, g.0.to_be_bytes().to_vec())
            }
            Rejection::TsUnacceptable => (NotifyType::TS_UNACCEPTABLE, Vec::new()),
            Rejection::AuthFailed => (NotifyType::AUTHENTICATION_FAILED, Vec::new()),
            Rejection::Busy => (NotifyType::TEMPORARY_FAILURE, Vec::new()),
            Rejection::ChildNotFound => (NotifyType::CHILD_SA_NOT_FOUND, Vec::new()),
            Rejection::NoAdditionalSas => (NotifyType::NO_ADDITIONAL_SAS, Vec::new()),
            Rejection::UnknownIkeSa => (NotifyType::INVALID_IKE_SPI, Vec::new()),
            Rejection::MajorVersion => (NotifyType::INVALID_MAJOR_VERSION, vec![0x20]),
            Rejection::AddressFailure => (NotifyType::INTERNAL_ADDRESS_FAILURE, Vec::new()),
            Rejection::CpRequired => (NotifyType::FAILED_CP_REQUIRED, Vec::new()),
            Rejection::StateNotFound => (NotifyType::STATE_NOT_FOUND, Vec::new()),
        }
    }

    /// The rejection a negotiation failure of ours (as the responder) is answered with.
    pub(crate) fn of(f: &Failure) -> Self {
        match f {
            Failure::TsUnacceptable(_) | Failure::Local(LocalError::NoPolicy) => {
                Rejection::TsUnacceptable
            }
            Failure::PeerMisbehaved { .. } => Rejection::Malformed,
            Failure::AddressFailure { .. } => Rejection::AddressFailure,
            Failure::CpRequired { .. } => Rejection::CpRequired,
            Failure::AuthFailed
            | Failure::IdMismatch { .. }
            | Failure::UntrustedIssuer { .. }
            | Failure::CertificateExpired { .. }
            | Failure::CertificateNotYetValid { .. }
            | Failure::CertificateInvalid { .. }
            | Failure::CertificateRevoked(_)
            | Failure::ChainTooLong { .. }
            | Failure::CertificateIdMismatch { .. }
            | Failure::BadSignature { .. }
            | Failure::UnsupportedSignature(_)
            | Failure::NoPeerCertificate
            | Failure::AuthMethodMismatch { .. } => Rejection::AuthFailed,
            _ => Rejection::NoProposal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each reason has its one notify (a table, so that a change is a visible decision).
    #[test]
    fn every_rejection_has_its_notify() {
        let table = [
            (Rejection::Malformed, NotifyType::INVALID_SYNTAX),
            (
                Rejection::UnsupportedCritical,
                NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
            ),
            (Rejection::NoProposal, NotifyType::NO_PROPOSAL_CHOSEN),
            (
                Rejection::WrongGroup(DhGroup::ECP_256),
                NotifyType::INVALID_KE_PAYLOAD,
            ),
            (Rejection::TsUnacceptable, NotifyType::TS_UNACCEPTABLE),
            (Rejection::AuthFailed, NotifyType::AUTHENTICATION_FAILED),
            (Rejection::Busy, NotifyType::TEMPORARY_FAILURE),
            (Rejection::ChildNotFound, NotifyType::CHILD_SA_NOT_FOUND),
            (Rejection::NoAdditionalSas, NotifyType::NO_ADDITIONAL_SAS),
            (Rejection::UnknownIkeSa, NotifyType::INVALID_IKE_SPI),
            (Rejection::MajorVersion, NotifyType::INVALID_MAJOR_VERSION),
            (
                Rejection::AddressFailure,
                NotifyType::INTERNAL_ADDRESS_FAILURE,
            ),
            (Rejection::CpRequired, NotifyType::FAILED_CP_REQUIRED),
            (Rejection::StateNotFound, NotifyType::STATE_NOT_FOUND),
        ];
        for (r, ty) in table {
            assert_eq!(r.notify().0, ty, "{r:?}");
        }
        assert_eq!(
            Rejection::WrongGroup(DhGroup::ECP_256).notify().1,
            19u16.to_be_bytes()
        );
        assert_eq!(Rejection::MajorVersion.notify().1, [0x20], "version 2.0");
        assert_eq!(
            Rejection::of(&Failure::Local(LocalError::NoPolicy)),
            Rejection::TsUnacceptable
        );
        assert_eq!(Rejection::of(&Failure::AuthFailed), Rejection::AuthFailed);
        assert_eq!(Rejection::of(&Failure::AhWithNat), Rejection::NoProposal);
    }
}
