//! IKEv1 key derivation (RFC 2409 §5, §5.5, Appendix B).
//!
//! ```text
//! SKEYID   = prf(pre-shared-key, Ni_b | Nr_b)            (shared key)
//! SKEYID   = prf(Ni_b | Nr_b, g^xy)                      (signatures)
//! SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//! SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//! SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
//! phase-1 IV = hash(g^xi | g^xr), phase-2 IV = hash(last phase-1 CBC block | M-ID)
//! KEYMAT   = K1 | K2 …, K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b),
//!            Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
//! ```
//!
//! The PRF is the HMAC of the negotiated hash ([`Prf::from_hash`]).

use crate::{Error, HashAlgorithm, Prf, Secret};

/// SKEYID for pre-shared key authentication: prf(pre-shared-key, Ni_b | Nr_b).
pub fn skeyid_psk(prf: Prf, psk: &Secret, ni_b: &[u8], nr_b: &[u8]) -> Secret {
    prf.compute(psk.expose(), &[ni_b, nr_b])
}

/// SKEYID for signature authentication: prf(Ni_b | Nr_b, g^xy).
pub fn skeyid_sig(prf: Prf, ni_b: &[u8], nr_b: &[u8], g_xy: &[u8]) -> Secret {
    let mut key = Secret::new(Vec::with_capacity(ni_b.len() + nr_b.len()));
    key.extend_from_slice(ni_b);
    key.extend_from_slice(nr_b);
    prf.compute(key.expose(), &[g_xy])
}

/// SKEYID and its three derived keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase1Keys {
    /// SKEYID (keys HASH_I / HASH_R).
    pub skeyid: Secret,
    /// SKEYID_d (derives quick-mode KEYMAT).
    pub skeyid_d: Secret,
    /// SKEYID_a (keys the HASH payloads of phase 2 and informational exchanges).
    pub skeyid_a: Secret,
    /// SKEYID_e (expanded into the ISAKMP SA encryption key, [`encryption_key`]).
    pub skeyid_e: Secret,
}

impl Phase1Keys {
    /// Derives SKEYID_d, SKEYID_a and SKEYID_e from SKEYID.
    pub fn derive(prf: Prf, skeyid: Secret, g_xy: &[u8], cky_i: &[u8; 8], cky_r: &[u8; 8]) -> Self {
        let k = prf.key(skeyid.expose());
        let d = k.compute(&[g_xy, cky_i, cky_r, &[0]]);
        let a = k.compute(&[d.expose(), g_xy, cky_i, cky_r, &[1]]);
        let e = k.compute(&[a.expose(), g_xy, cky_i, cky_r, &[2]]);
        Self {
            skeyid,
            skeyid_d: d,
            skeyid_a: a,
            skeyid_e: e,
        }
    }
}

/// The ISAKMP SA encryption key: the first `key_len` bytes of SKEYID_e, expanded per RFC 2409
/// Appendix B when SKEYID_e is too short: Ka = K1 | K2 | …, K1 = prf(SKEYID_e, 0),
/// Kn = prf(SKEYID_e, Kn-1).
pub fn encryption_key(prf: Prf, skeyid_e: &Secret, key_len: usize) -> Secret {
    if skeyid_e.len() >= key_len {
        return skeyid_e.take_prefix(0, key_len).unwrap_or_default();
    }
    let k = prf.key(skeyid_e.expose());
    let mut out = Secret::new(Vec::with_capacity(key_len + prf.output_len()));
    let mut prev = k.compute(&[&[0]]);
    out.extend_from_slice(prev.expose());
    while out.len() < key_len {
        prev = k.compute(&[prev.expose()]);
        out.extend_from_slice(prev.expose());
    }
    out.truncate(key_len);
    out
}

/// The phase-1 IV: hash(g^xi | g^xr) truncated to the cipher's block size (RFC 2409 Appendix B).
pub fn phase1_iv(hash: HashAlgorithm, g_xi: &[u8], g_xr: &[u8], block_len: usize) -> Vec<u8> {
    let mut d = hash.digest(&[g_xi, g_xr]);
    d.truncate(block_len);
    d
}

/// The IV of a phase-2 (quick mode) or informational exchange: hash(last phase-1 CBC output
/// block | M-ID) truncated to the block size (RFC 2409 Appendix B).
pub fn phase2_iv(
    hash: HashAlgorithm,
    last_phase1_block: &[u8],
    message_id: u32,
    block_len: usize,
) -> Vec<u8> {
    let mut d = hash.digest(&[last_phase1_block, &message_id.to_be_bytes()]);
    d.truncate(block_len);
    d
}

/// Quick-mode KEYMAT for one SA (RFC 2409 §5.5). `spi` is the SPI of the SA (the one chosen by
/// the receiving side); `protocol` the IPsec DOI protocol (3 = ESP, 2 = AH); `g_qm` the
/// quick-mode DH shared secret when PFS was used.
#[allow(clippy::too_many_arguments)]
pub fn quick_mode_keymat(
    prf: Prf,
    skeyid_d: &Secret,
    g_qm: Option<&[u8]>,
    protocol: u8,
    spi: u32,
    ni_b: &[u8],
    nr_b: &[u8],
    len: usize,
) -> Result<Secret, Error> {
    if len > 255 * prf.output_len() {
        return Err(Error::Length("KEYMAT too long"));
    }
    let k = prf.key(skeyid_d.expose());
    let proto = [protocol];
    let spi = spi.to_be_bytes();
    let g: &[u8] = g_qm.unwrap_or(&[]);
    let mut out = Secret::new(Vec::with_capacity(len + prf.output_len()));
    let mut prev = Secret::default();
    while out.len() < len {
        prev = k.compute(&[prev.expose(), g, &proto, &spi, ni_b, nr_b]);
        out.extend_from_slice(prev.expose());
    }
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appendix_b_expansion() {
        let e = Secret::from_slice(&[9; 20]);
        // Long enough: a prefix.
        assert_eq!(encryption_key(Prf::HmacSha1, &e, 16).expose(), &[9; 16]);
        // Too short: K1 = prf(SKEYID_e, 0), K2 = prf(SKEYID_e, K1).
        let k = encryption_key(Prf::HmacSha1, &e, 32);
        let k1 = Prf::HmacSha1.compute(e.expose(), &[&[0]]);
        let k2 = Prf::HmacSha1.compute(e.expose(), &[k1.expose()]);
        assert_eq!(k.expose(), &[k1.expose(), &k2.expose()[..12]].concat()[..]);
    }

    #[test]
    fn keymat_chains_blocks() {
        let d = Secret::from_slice(&[1; 20]);
        let km = quick_mode_keymat(Prf::HmacSha1, &d, Some(b"gqm"), 3, 0x1234, b"ni", b"nr", 45)
            .unwrap();
        let spi = 0x1234u32.to_be_bytes();
        let k1 = Prf::HmacSha1.compute(&[1; 20], &[b"gqm", &[3], &spi, b"ni", b"nr"]);
        let k2 = Prf::HmacSha1.compute(&[1; 20], &[k1.expose(), b"gqm", &[3], &spi, b"ni", b"nr"]);
        assert_eq!(&km.expose()[..20], k1.expose());
        assert_eq!(&km.expose()[20..40], k2.expose());
        assert_eq!(km.len(), 45);
    }

    #[test]
    fn ivs() {
        let iv = phase1_iv(HashAlgorithm::Sha1, b"gxi", b"gxr", 16);
        assert_eq!(iv, HashAlgorithm::Sha1.digest(&[b"gxigxr"])[..16]);
        let iv2 = phase2_iv(HashAlgorithm::Sha256, &[0xaa; 16], 0x01020304, 16);
        assert_eq!(
            iv2,
            HashAlgorithm::Sha256.digest(&[&[0xaa; 16], &[1, 2, 3, 4]])[..16]
        );
    }
}
