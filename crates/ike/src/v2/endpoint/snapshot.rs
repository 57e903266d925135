//! What `show` sees: every IKE SA and its Child SAs, states, key fingerprints and queued work.

use super::*;

impl Endpoint {
    /// The keys of every established IKE SA, for a Wireshark decryption table (the daemon
    /// asks only when the operator allowed key export).
    pub fn export_ike_keys(&self) -> Vec<crate::export::IkeKeyExport> {
        self.export_keys(true)
    }

    /// The keys of every IKE SA that has them, established or not: also those of an SA still
    /// in IKE_INTERMEDIATE or IKE_AUTH (its keys after the last key exchange so far), to open
    /// a failed handshake in Wireshark, and for the fuzzer to seal the messages of a handshake
    /// in progress (fuzz/fuzz_targets/ikev2_intermediate.rs).
    pub fn export_handshake_keys(&self) -> Vec<crate::export::IkeKeyExport> {
        self.export_keys(false)
    }

    fn export_keys(&self, established_only: bool) -> Vec<crate::export::IkeKeyExport> {
        self.sas
            .values()
            .filter(|sa| !established_only || sa.established())
            .filter_map(|sa| {
                let (encr, integ, [sk_ei, sk_er, sk_ai, sk_ar]) =
                    sa.keys.as_ref()?.export(sa.initiator);
                Some(crate::export::IkeKeyExport::V2 {
                    spi_i: sa.spi_i,
                    spi_r: sa.spi_r,
                    encr,
                    integ,
                    sk_ei,
                    sk_er,
                    sk_ai,
                    sk_ar,
                })
            })
            .collect()
    }

    /// A snapshot of every IKE SA and its Child SAs, for operators and tests (no secrets:
    /// keys appear as a short fingerprint).
    pub fn snapshot(&self) -> Vec<IkeSaSnapshot> {
        self.sas
            .values()
            .map(|sa| IkeSaSnapshot {
                handle: IkeSaHandle(sa.our_spi()),
                peer: sa.peer,
                initiator: sa.initiator,
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                state: match (&sa.state, sa.life) {
                    (State::InitSent(_) | State::IntSent(_) | State::AuthSent(_), _) => {
                        IkeSaState::Connecting
                    }
                    (State::HalfOpen { .. }, _) => IkeSaState::HalfOpen,
                    (State::Established, Life::Rekeyed(_)) => IkeSaState::Rekeyed,
                    (State::Established, _) if sa.deleting() => IkeSaState::Deleting,
                    (State::Established, Life::Rekeying) => IkeSaState::Rekeying,
                    (State::Established, Life::Normal) => IkeSaState::Established,
                },
                announced: sa.announced,
                key_fingerprint: sa.keys.as_ref().map_or_else(Vec::new, |k| {
                    let mut v = k
                        .prf
                        .compute(k.sk_d.expose(), &[b"ferrosec fingerprint"])
                        .expose()
                        .to_vec();
                    v.truncate(8);
                    v
                }),
                request_in_flight: sa.requests.busy(),
                awaiting_followup: sa.followup.is_some(),
                queued: sa.queue.len() + sa.deferred.len(),
                rekey_at: sa.soft,
                expires_at: sa.hard,
                reauth_at: self.next_reauth(sa),
                children: sa
                    .children
                    .iter()
                    .map(|c| ChildSaSnapshot {
                        inbound_spi: c.inbound,
                        outbound_spi: c.outbound,
                        policy: c.policy,
                        state: c.state,
                        rekey_at: c.soft,
                        expires_at: c.hard,
                        key_fingerprint: c.fingerprints.0.to_vec(),
                        peer_key_fingerprint: c.fingerprints.1.to_vec(),
                    })
                    .collect(),
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------
    // Timeouts
}
