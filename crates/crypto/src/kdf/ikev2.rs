//! IKEv2 key derivation (RFC 7296 §2.13, §2.14, §2.17, §2.18; RFC 9370 §2.2.2).
//!
//! ```text
//! SKEYSEED = prf(Ni | Nr, g^ir)
//! {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
//! rekey:  SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
//! child:  KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)
//! ```
//!
//! With RFC 9370 additional key exchanges in IKE_FOLLOWUP_KE (§2.2.4) the callers pass
//! `g^ir (new) | SK(1) | ... | SK(n)` ([`crate::Secret::concat`]) where g^ir goes, in both the
//! rekey SKEYSEED and the Child SA KEYMAT.

use crate::{Error, Prf, Secret, ct_eq};

/// SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 §2.14).
///
/// For PRFs with a fixed key size (AES-XCBC, AES-CMAC) the key is the first 64 bits of Ni
/// followed by the first 64 bits of Nr, as §2.14 requires. Nonces must be at least 8 bytes (RFC
/// 7296 §2.10 requires at least 16).
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Result<Secret, Error> {
    if ni.len() < 8 || nr.len() < 8 {
        return Err(Error::Length("nonce shorter than 8 bytes"));
    }
    let mut key = Secret::new(Vec::with_capacity(ni.len() + nr.len()));
    if prf.has_fixed_key() {
        key.extend_from_slice(&ni[..8]);
        key.extend_from_slice(&nr[..8]);
    } else {
        key.extend_from_slice(ni);
        key.extend_from_slice(nr);
    }
    Ok(prf.compute(key.expose(), &[g_ir]))
}

/// SKEYSEED for a new IKE SA created by rekeying: prf(SK_d (old), g^ir (new) | Ni | Nr)
/// (RFC 7296 §2.18), with the nonces of the CREATE_CHILD_SA exchange.
///
/// The same formula chains the additional key exchanges of RFC 9370 §2.2.2:
/// `SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)`, where `g_ir_new` is SK(n).
pub fn rekey_skeyseed(
    prf: Prf,
    sk_d_old: &Secret,
    g_ir_new: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> Secret {
    prf.compute(sk_d_old.expose(), &[g_ir_new, ni, nr])
}

/// Key lengths of a negotiated IKE SA, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSaKeyLengths {
    /// Length of SK_ei / SK_er, including the salt of an AEAD cipher
    /// ([`crate::IkeCipher::keymat_len`]).
    pub encr: usize,
    /// Length of SK_ai / SK_ar ([`crate::Integrity::key_len`]); 0 with an AEAD cipher.
    pub integ: usize,
}

/// The seven keys of an IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaKeys {
    /// SK_d: derives Child SA keys and rekeyed SKEYSEEDs.
    pub sk_d: Secret,
    /// SK_ai: integrity, initiator → responder.
    pub sk_ai: Secret,
    /// SK_ar: integrity, responder → initiator.
    pub sk_ar: Secret,
    /// SK_ei: encryption (plus salt for AEAD), initiator → responder.
    pub sk_ei: Secret,
    /// SK_er: encryption (plus salt for AEAD), responder → initiator.
    pub sk_er: Secret,
    /// SK_pi: for the initiator's AUTH payload.
    pub sk_pi: Secret,
    /// SK_pr: for the responder's AUTH payload.
    pub sk_pr: Secret,
}

impl IkeSaKeys {
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi |
    /// SPIr) (RFC 7296 §2.14). SK_d, SK_pi and SK_pr have the PRF's preferred key length.
    pub fn derive(
        prf: Prf,
        skeyseed: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
        lens: IkeSaKeyLengths,
    ) -> Result<Self, Error> {
        let p = prf.key_len();
        let total = 3 * p + 2 * lens.integ + 2 * lens.encr;
        let spi_i = spi_i.to_be_bytes();
        let spi_r = spi_r.to_be_bytes();
        let km = prf.prf_plus(skeyseed.expose(), &[ni, nr, &spi_i, &spi_r], total)?;
        let mut off = 0;
        let mut take = |n: usize| {
            let s = km.take_prefix(off, n).unwrap_or_default();
            off += n;
            s
        };
        Ok(Self {
            sk_d: take(p),
            sk_ai: take(lens.integ),
            sk_ar: take(lens.integ),
            sk_ei: take(lens.encr),
            sk_er: take(lens.encr),
            sk_pi: take(p),
            sk_pr: take(p),
        })
    }
}

/// Child SA KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (RFC 7296 §2.17). Pass `g_ir_new` when
/// the CREATE_CHILD_SA exchange carried KE payloads (PFS); `None` for the first Child SA and
/// for rekeys without PFS.
pub fn child_keymat(
    prf: Prf,
    sk_d: &Secret,
    g_ir_new: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Result<Secret, Error> {
    match g_ir_new {
        Some(g) => prf.prf_plus(sk_d.expose(), &[g, ni, nr], len),
        None => prf.prf_plus(sk_d.expose(), &[ni, nr], len),
    }
}

/// The four keys of a Child SA pair, split from KEYMAT in the order of RFC 7296 §2.17:
/// initiator→responder encryption, then integrity, then responder→initiator encryption, then
/// integrity. Encryption keys include the salt of AEAD/CTR ciphers
/// ([`crate::EspSuite::encr_keymat_len`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaKeys {
    /// Encryption key (+ salt), initiator → responder.
    pub encr_i: Secret,
    /// Integrity key, initiator → responder.
    pub integ_i: Secret,
    /// Encryption key (+ salt), responder → initiator.
    pub encr_r: Secret,
    /// Integrity key, responder → initiator.
    pub integ_r: Secret,
}

impl ChildSaKeys {
    /// Derives KEYMAT and splits it.
    pub fn derive(
        prf: Prf,
        sk_d: &Secret,
        g_ir_new: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        encr_len: usize,
        integ_len: usize,
    ) -> Result<Self, Error> {
        let km = child_keymat(prf, sk_d, g_ir_new, ni, nr, 2 * (encr_len + integ_len))?;
        let mut off = 0;
        let mut take = |n: usize| {
            let s = km.take_prefix(off, n).unwrap_or_default();
            off += n;
            s
        };
        Ok(Self {
            encr_i: take(encr_len),
            integ_i: take(integ_len),
            encr_r: take(encr_len),
            integ_r: take(integ_len),
        })
    }
}

/// The key pad of RFC 7296 §2.15.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// Shared-key AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)
/// (RFC 7296 §2.15). `signed_octets` is the concatenation the engine builds (message | nonce |
/// prf(SK_px, IDx')), given in parts.
pub fn psk_auth(prf: Prf, psk: &Secret, signed_octets: &[&[u8]]) -> Secret {
    let inner = prf.compute(psk.expose(), &[KEY_PAD]);
    prf.compute(inner.expose(), signed_octets)
}

/// Verifies a peer's shared-key AUTH in constant time.
pub fn verify_psk_auth(
    prf: Prf,
    psk: &Secret,
    signed_octets: &[&[u8]],
    received: &[u8],
) -> Result<(), Error> {
    let want = psk_auth(prf, psk, signed_octets);
    if ct_eq(want.expose(), received) {
        Ok(())
    } else {
        Err(Error::Integrity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_key_prf_uses_64_bits_of_each_nonce() {
        let ni = [1u8; 32];
        let nr = [2u8; 32];
        let g = [3u8; 256];
        let s = skeyseed(Prf::Aes128Xcbc, &ni, &nr, &g).unwrap();
        let want = Prf::Aes128Xcbc.compute(&[[1u8; 8], [2u8; 8]].concat(), &[&g]);
        assert_eq!(s, want);
        // The HMAC PRFs use the whole nonces.
        let s = skeyseed(Prf::HmacSha256, &ni, &nr, &g).unwrap();
        assert_eq!(s, Prf::HmacSha256.compute(&[ni, nr].concat(), &[&g]));
        assert!(skeyseed(Prf::HmacSha256, &ni[..7], &nr, &g).is_err());
    }

    #[test]
    fn psk_auth_round_trip() {
        let psk = Secret::from_slice(b"correct horse battery staple");
        let a = psk_auth(Prf::HmacSha256, &psk, &[b"msg", b"nonce", b"id"]);
        assert_eq!(a.len(), 32);
        verify_psk_auth(Prf::HmacSha256, &psk, &[b"msgnonce", b"id"], a.expose()).unwrap();
        let wrong = Secret::from_slice(b"wrong");
        assert_eq!(
            verify_psk_auth(Prf::HmacSha256, &wrong, &[b"msgnonceid"], a.expose()),
            Err(Error::Integrity)
        );
    }

    #[test]
    fn aead_ike_sa_has_empty_integrity_keys() {
        let seed = Secret::from_slice(&[7; 32]);
        let k = IkeSaKeys::derive(
            Prf::HmacSha256,
            &seed,
            &[1; 16],
            &[2; 16],
            1,
            2,
            IkeSaKeyLengths { encr: 36, integ: 0 },
        )
        .unwrap();
        assert!(k.sk_ai.is_empty() && k.sk_ar.is_empty());
        assert_eq!(k.sk_ei.len(), 36);
        assert_ne!(k.sk_ei, k.sk_er);
        assert_eq!(k.sk_pr.len(), 32);
    }
}
