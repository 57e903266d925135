//! Tests of the event types: failures explained in words.

use super::*;

/// R-V2-13: every error notify of RFC 7296 §3.10.1 a peer may answer with is explained in
/// words after its name, and an unknown one is named alone.
#[test]
fn every_error_notify_a_peer_sends_is_explained() {
    for n in [
        NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
        NotifyType::INVALID_MAJOR_VERSION,
        NotifyType::INVALID_SYNTAX,
        NotifyType::INVALID_MESSAGE_ID,
        NotifyType::NO_PROPOSAL_CHOSEN,
        NotifyType::INVALID_KE_PAYLOAD,
        NotifyType::AUTHENTICATION_FAILED,
        NotifyType::SINGLE_PAIR_REQUIRED,
        NotifyType::NO_ADDITIONAL_SAS,
        NotifyType::INTERNAL_ADDRESS_FAILURE,
        NotifyType::FAILED_CP_REQUIRED,
        NotifyType::TS_UNACCEPTABLE,
        NotifyType::INVALID_SELECTORS,
        NotifyType::TEMPORARY_FAILURE,
        NotifyType::CHILD_SA_NOT_FOUND,
    ] {
        let words = Failure::PeerRefused { notify: n }.to_string();
        assert!(
            words.starts_with(&format!("peer refused: {n} (")) && words.ends_with(')'),
            "{words}"
        );
    }
    let single = Failure::PeerRefused {
        notify: NotifyType::SINGLE_PAIR_REQUIRED,
    }
    .to_string();
    assert!(single.contains("host-to-host"), "{single}");
    assert_eq!(
        Failure::PeerRefused {
            notify: NotifyType(40_000)
        }
        .to_string(),
        format!("peer refused: {}", NotifyType(40_000))
    );
}
