//! IKE SA keys and the protection of messages with the Encrypted (SK) payload (RFC 7296
//! §2.14, §3.14).

use ferrosec_crypto::kdf::ikev2::{IkeSaKeyLengths, IkeSaKeys, rekey_skeyseed, skeyseed};
use ferrosec_crypto::{Encryption, IkeSkCrypter, Integrity, Prf, Provider, Rng, Secret};
use ferrosec_wire::IkeSpi;
use ferrosec_wire::ikev2::{
    Encrypted, EncryptedFragment, GENERIC_HEADER_LEN, HEADER_LEN, Header, Message, Payload,
    PayloadBody, PayloadType, SkLayout, emit_payloads, payloads_len,
};

use crate::proposal::Selected;

/// Why a protected message could not be built or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtectError {
    /// Encoding failed (too long, …).
    #[error("encoding: {0}")]
    Wire(#[from] ferrosec_wire::Error),
    /// Crypto failed (bad ICV, bad padding, …).
    #[error("crypto: {0}")]
    Crypto(#[from] ferrosec_crypto::Error),
    /// The message has no SK payload.
    #[error("message has no Encrypted payload")]
    NoSk,
    /// The message cannot be fragmented as asked.
    #[error("fragmentation: {0}")]
    Fragments(&'static str),
}

/// The keys of an established (or authenticating) IKE SA, seen from one side.
///
/// The SK_e/SK_a keys are kept as bytes, and the two [`IkeSkCrypter`]s are keyed from them
/// for each message: a keyed crypter is about 1.4 KB inline (its enums are sized for AES-CBC
/// and HMAC-SHA2-512 state) plus the AEAD library's context on the heap (about 600 B for
/// AES-GCM), i.e. close to 4 KB per IKE SA for two directions, while an established IKE SA
/// protects a message only now and then (liveness, rekey, delete). Keying costs about a
/// microsecond, and IVs come from the injected generator, so nothing is lost between
/// messages.
///
/// All keys but SK_d (which the KDF takes as a [`Secret`]) share one allocation.
#[derive(Debug)]
pub(crate) struct IkeKeys {
    pub(crate) prf: Prf,
    pub(crate) sk_d: Secret,
    encr: Encryption,
    integ: Option<Integrity>,
    /// SK_pi | SK_pr | SK_e, SK_a of the direction we send in | SK_e, SK_a of the one we
    /// receive in.
    material: Secret,
    /// Lengths of SK_p, SK_e and SK_a.
    lens: (usize, usize, usize),
}

impl IkeKeys {
    /// Derives SKEYSEED and the seven keys (§2.14) for the negotiated proposal and keys the
    /// two directions for our role.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn derive(
        provider: &Provider,
        proposal: &Selected,
        g_ir: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: IkeSpi,
        spi_r: IkeSpi,
        initiator: bool,
    ) -> Result<Self, ferrosec_crypto::Error> {
        Self::derive_inner(
            provider, proposal, None, g_ir, ni, nr, spi_i, spi_r, initiator,
        )
    }

    /// The keys of a new IKE SA made by rekeying the one with keys `old` (§2.18).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn derive_rekey(
        provider: &Provider,
        proposal: &Selected,
        old: &IkeKeys,
        g_ir: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: IkeSpi,
        spi_r: IkeSpi,
        initiator: bool,
    ) -> Result<Self, ferrosec_crypto::Error> {
        Self::derive_inner(
            provider,
            proposal,
            Some(old),
            g_ir,
            ni,
            nr,
            spi_i,
            spi_r,
            initiator,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn derive_inner(
        provider: &Provider,
        proposal: &Selected,
        rekey_of: Option<&IkeKeys>,
        g_ir: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: IkeSpi,
        spi_r: IkeSpi,
        initiator: bool,
    ) -> Result<Self, ferrosec_crypto::Error> {
        let unsupported = ferrosec_crypto::Error::Unsupported("IKE proposal without ENCR or PRF");
        let (encr_id, key_bits) = proposal.encr.ok_or(unsupported.clone())?;
        let prf = provider.prf(proposal.prf.ok_or(unsupported)?.0)?;
        let encr: Encryption = provider.encryption(encr_id.0, key_bits)?;
        let integ: Option<Integrity> = match proposal.integ {
            Some(i) => Some(provider.integrity(i.0)?),
            None => None,
        };
        let lens = IkeSaKeyLengths {
            encr: encr.keymat_len(),
            integ: integ.map_or(0, Integrity::key_len),
        };
        let seed = match rekey_of {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-2.18
            //# SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
            // With the old IKE SA's PRF (as strongSwan does); prf+ below uses the new one.
            Some(old) => rekey_skeyseed(old.prf, &old.sk_d, g_ir.expose(), ni, nr),
            None => skeyseed(prf, ni, nr, g_ir.expose())?,
        };
        let k = IkeSaKeys::derive(prf, &seed, ni, nr, spi_i.0, spi_r.0, lens)?;
        // Keyed once here so that an unusable combination fails now, as it always did.
        IkeSkCrypter::new(encr, &k.sk_ei, integ, &k.sk_ai)?;
        IkeSkCrypter::new(encr, &k.sk_er, integ, &k.sk_ar)?;
        let ci = [&k.sk_ei, &k.sk_ai];
        let cr = [&k.sk_er, &k.sk_ar];
        let (send, recv) = if initiator { (ci, cr) } else { (cr, ci) };
        let parts = [&k.sk_pi, &k.sk_pr, send[0], send[1], recv[0], recv[1]];
        let mut material = Secret::zeroed(parts.iter().map(|p| p.expose().len()).sum());
        let mut at = 0;
        for p in parts {
            let b = p.expose();
            material.expose_mut()[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        }
        Ok(IkeKeys {
            prf,
            sk_d: k.sk_d,
            encr,
            integ,
            material,
            lens: (
                k.sk_pi.expose().len(),
                k.sk_ei.expose().len(),
                k.sk_ai.expose().len(),
            ),
        })
    }

    /// The algorithms and SK_ei, SK_er, SK_ai, SK_ar, for a key export; `initiator` is our
    /// role.
    pub(crate) fn export(&self, initiator: bool) -> (Encryption, Option<Integrity>, [Secret; 4]) {
        let (p, e, a) = self.lens;
        let m = self.material.expose();
        let ours = (
            Secret::from_slice(&m[2 * p..2 * p + e]),
            Secret::from_slice(&m[2 * p + e..2 * p + e + a]),
        );
        let at = 2 * p + e + a;
        let theirs = (
            Secret::from_slice(&m[at..at + e]),
            Secret::from_slice(&m[at + e..at + e + a]),
        );
        let ((ei, ai), (er, ar)) = if initiator {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        (self.encr, self.integ, [ei, er, ai, ar])
    }

    /// SK_pi.
    pub(crate) fn sk_pi(&self) -> &[u8] {
        &self.material.expose()[..self.lens.0]
    }

    /// SK_pr.
    pub(crate) fn sk_pr(&self) -> &[u8] {
        &self.material.expose()[self.lens.0..2 * self.lens.0]
    }

    /// A crypter for the direction we send in (`send`) or receive in.
    fn crypter(&self, send: bool) -> Result<IkeSkCrypter, ferrosec_crypto::Error> {
        let (p, e, a) = self.lens;
        let start = 2 * p + if send { 0 } else { e + a };
        let m = &self.material.expose()[start..start + e + a];
        IkeSkCrypter::new(
            self.encr,
            &Secret::from_slice(&m[..e]),
            self.integ,
            &Secret::from_slice(&m[e..]),
        )
    }

    /// Builds a message whose payloads are all inside one SK payload.
    pub(crate) fn seal(
        &self,
        rng: &mut dyn Rng,
        header: Header,
        inner: &[Payload<'_>],
    ) -> Result<Vec<u8>, ProtectError> {
        let send = self.crypter(true)?;
        let plaintext = plain(inner)?;
        seal_one(&send, rng, header, first_type(inner), None, &plaintext)
    }

    /// Builds a message as [`Self::seal`] does when it is at most `max` bytes long, else as
    /// Encrypted Fragment (SKF) payloads of at most `max` bytes each (RFC 7383 §2.5): the
    /// inner payloads are split first and each piece is encrypted and authenticated on its
    /// own. Fails when more than [`MAX_FRAGMENTS`] fragments would be needed.
    pub(crate) fn seal_fragmented(
        &self,
        rng: &mut dyn Rng,
        header: Header,
        inner: &[Payload<'_>],
        max: usize,
    ) -> Result<Vec<Vec<u8>>, ProtectError> {
        let send = self.crypter(true)?;
        let plaintext = plain(inner)?;
        let first = first_type(inner);
        if HEADER_LEN + GENERIC_HEADER_LEN + send.encrypted_len(plaintext.len()) <= max {
            return Ok(vec![seal_one(&send, rng, header, first, None, &plaintext)?]);
        }
        //= https://www.rfc-editor.org/rfc/rfc7383#section-2.5.1
        //# the initiator MUST fragment the message so that each fragment would fit the
        //# PMTU
        let overhead = HEADER_LEN + GENERIC_HEADER_LEN + 4;
        let room = max.saturating_sub(overhead);
        let chunk = (1..=room)
            .rev()
            .find(|&n| send.encrypted_len(n) <= room)
            .ok_or(ProtectError::Fragments(
                "the fragment size leaves no room for data",
            ))?;
        let total = plaintext.len().div_ceil(chunk);
        let total = u16::try_from(total)
            .ok()
            .filter(|&t| t <= MAX_FRAGMENTS)
            .ok_or(ProtectError::Fragments(
                "the message needs too many fragments",
            ))?;
        plaintext
            .chunks(chunk)
            .zip(1u16..)
            .map(|(piece, number)| {
                //= https://www.rfc-editor.org/rfc/rfc7383#section-2.5
                //# Next Payload (1 octet) -- in the very first fragment (with Fragment
                //# Number equal to 1), this field MUST be set to the payload type of the
                //# first inner payload (the same as for the Encrypted payload).  In the
                //# rest of the Fragment messages (with Fragment Number greater than 1),
                //# this field MUST be set to zero.
                let next = if number == 1 {
                    first
                } else {
                    PayloadType::NONE
                };
                seal_one(&send, rng, header, next, Some((number, total)), piece)
            })
            .collect()
    }

    /// Verifies and decrypts a parsed message's SK payload; returns the first inner payload
    /// type and the inner payload bytes (parse them with
    /// [`ferrosec_wire::ikev2::parse_payloads`]). A fragment (SKF) is refused here: see
    /// [`Self::open_fragment`].
    pub(crate) fn open(
        &self,
        raw: &[u8],
        msg: &Message<'_>,
    ) -> Result<(PayloadType, Vec<u8>), ProtectError> {
        let layout = msg.sk_layout().ok_or(ProtectError::NoSk)?;
        if layout.fragment.is_some() {
            return Err(ProtectError::NoSk);
        }
        self.open_layout(raw, &layout)
    }

    /// Verifies and decrypts one Encrypted Fragment (SKF) payload (RFC 7383 §2.6: each
    /// fragment is checked on its own, before it is kept for reassembly).
    pub(crate) fn open_fragment(
        &self,
        raw: &[u8],
        msg: &Message<'_>,
    ) -> Result<OpenedFragment, ProtectError> {
        let layout = msg.sk_layout().ok_or(ProtectError::NoSk)?;
        let (number, total) = layout.fragment.ok_or(ProtectError::NoSk)?;
        let (next, data) = self.open_layout(raw, &layout)?;
        Ok(OpenedFragment {
            number,
            total,
            next,
            data,
        })
    }

    fn open_layout(
        &self,
        raw: &[u8],
        layout: &SkLayout,
    ) -> Result<(PayloadType, Vec<u8>), ProtectError> {
        let aad = raw.get(layout.aad()).ok_or(ProtectError::NoSk)?;
        let body = raw.get(layout.data.clone()).ok_or(ProtectError::NoSk)?;
        let plain = self.crypter(false)?.open(aad, body)?;
        Ok((layout.next_payload, plain))
    }
}

/// The most fragments of one message, sent or reassembled.
pub(crate) const MAX_FRAGMENTS: u16 = 32;

/// One verified and decrypted fragment.
#[derive(Debug)]
pub(crate) struct OpenedFragment {
    /// Fragment Number (from 1).
    pub(crate) number: u16,
    /// Total Fragments.
    pub(crate) total: u16,
    /// The first inner payload's type (fragment 1; zero in the others).
    pub(crate) next: PayloadType,
    /// The decrypted piece of the inner payloads.
    pub(crate) data: Vec<u8>,
}

fn first_type(inner: &[Payload<'_>]) -> PayloadType {
    inner
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type)
}

fn plain(inner: &[Payload<'_>]) -> Result<Vec<u8>, ProtectError> {
    let mut plaintext = vec![0u8; payloads_len(inner)];
    emit_payloads(inner, &mut plaintext)?;
    Ok(plaintext)
}

/// One message with one SK payload, or with one SKF payload when `fragment` is
/// `(number, total)`, around `plaintext`.
fn seal_one(
    send: &IkeSkCrypter,
    rng: &mut dyn Rng,
    header: Header,
    next: PayloadType,
    fragment: Option<(u16, u16)>,
    plaintext: &[u8],
) -> Result<Vec<u8>, ProtectError> {
    let placeholder = vec![0u8; send.encrypted_len(plaintext.len())];
    let body = match fragment {
        None => PayloadBody::Encrypted(Encrypted {
            next_payload: next,
            data: &placeholder,
        }),
        Some((fragment_number, total_fragments)) => {
            PayloadBody::EncryptedFragment(EncryptedFragment {
                next_payload: next,
                fragment_number,
                total_fragments,
                data: &placeholder,
            })
        }
    };
    let msg = Message {
        header,
        payloads: vec![Payload::new(body)],
    };
    let mut out = msg.to_vec()?;
    let layout = msg.sk_layout().ok_or(ProtectError::NoSk)?;
    let aad = out.get(layout.aad()).ok_or(ProtectError::NoSk)?.to_vec();
    let sealed = send.seal(rng, &aad, plaintext)?;
    let dst = out.get_mut(layout.data).ok_or(ProtectError::NoSk)?;
    if dst.len() != sealed.len() {
        return Err(ProtectError::Crypto(ferrosec_crypto::Error::Length(
            "sealed SK body length",
        )));
    }
    dst.copy_from_slice(&sealed);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use ferrosec_wire::ikev2::{EncrId, PrfId, ProtocolId};

    use super::*;

    fn sel() -> Selected {
        Selected {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: Vec::new(),
            encr: Some((EncrId::AES_GCM_16, Some(256))),
            prf: Some(PrfId::HMAC_SHA2_256),
            integ: None,
            ke: None,
            addke: [ferrosec_wire::ikev2::DhGroup::NONE; 7],
            esn: None,
        }
    }

    fn keys(g: &[u8], old: Option<&IkeKeys>) -> IkeKeys {
        let p = Provider::default();
        let g = Secret::from_slice(g);
        let (ni, nr) = ([1u8; 32], [2u8; 32]);
        match old {
            None => IkeKeys::derive(&p, &sel(), &g, &ni, &nr, IkeSpi(1), IkeSpi(2), true),
            Some(o) => {
                IkeKeys::derive_rekey(&p, &sel(), o, &g, &ni, &nr, IkeSpi(1), IkeSpi(2), true)
            }
        }
        .unwrap()
    }

    /// §2.18: the rekeyed SKEYSEED depends on the old SK_d (not only on the new DH secret
    /// and nonces, as a fresh IKE_SA_INIT derivation would).
    #[test]
    fn rekey_derivation_chains_the_old_sk_d() {
        let (old1, old2) = (keys(b"first", None), keys(b"second", None));
        let fresh = keys(b"new dh", None);
        let r1 = keys(b"new dh", Some(&old1));
        let r1_again = keys(b"new dh", Some(&old1));
        let r2 = keys(b"new dh", Some(&old2));
        assert_eq!(r1.sk_d, r1_again.sk_d);
        assert_ne!(r1.sk_d, r2.sk_d, "the old SK_d is an input");
        assert_ne!(r1.sk_d, fresh.sk_d, "not the IKE_SA_INIT formula");
        // SKEYSEED = prf(SK_d(old), g^ir | Ni | Nr), then SK_d = first bytes of prf+.
        let seed = rekey_skeyseed(old1.prf, &old1.sk_d, b"new dh", &[1u8; 32], &[2u8; 32]);
        let lens = IkeSaKeyLengths { encr: 36, integ: 0 };
        let k = IkeSaKeys::derive(old1.prf, &seed, &[1u8; 32], &[2u8; 32], 1, 2, lens).unwrap();
        assert_eq!(k.sk_d, r1.sk_d);
    }
}
