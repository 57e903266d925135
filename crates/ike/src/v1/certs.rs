//! IKEv1 signature authentication (RFC 2409 §5.1, RFC 4754): RSA (method 3) and ECDSA
//! P-256/384/521 (methods 9/10/11), with the certificates of the gateway's
//! [`CertAuth`](crate::v2::CertAuth), the chain checks of IKEv2 ([`crate::v2::certauth`]).
//!
//! ```text
//! SKEYID = prf(Ni_b | Nr_b, g^xy)
//! main mode:        I: KE, Ni, CR*        R: KE, Nr, CR*
//!                   I: IDii, CERT*, SIG_I R: IDir, CERT*, SIG_R      (encrypted)
//! aggressive mode:  I: SA, KE, Ni, IDii, CR*
//!                   R: SA, KE, Nr, IDir, CERT*, CR*, SIG_R
//!                   I: CERT*, SIG_I
//! SIG_I = signature of HASH_I itself (no second hash): RSA PKCS#1 v1.5 type 1 without
//!         DigestInfo; ECDSA with HASH_I as the digest, r | s (as strongSwan and Cisco)
//! ```
//!
//! Choices (the RFCs leave them open; as strongSwan does):
//! - Both sides use the one negotiated method, so it is the one our certificate's key gives:
//!   a responder takes only transforms with it and says so in words when the peer offers
//!   none (a peer with an ECDSA certificate cannot authenticate to us with RSA).
//! - CR payloads: one per trust anchor (`ca`), X.509 signature encoding (4) with the CA's
//!   subject DN (DER) as the certificate authority, sent with KE (main mode) or in the first
//!   message of each side (aggressive mode); the peer's CRs are read and ignored.
//! - CERT: our certificate and its intermediates (encoding 4) are always sent with our SIG:
//!   IKEv1 has no other way for the peer to learn them and most peers expect them.
//! - Our ID defaults to our certificate's subject DN (ID_DER_ASN1_DN), as in IKEv2.

use ferrosec_crypto::sig::{self, KeyKind, PrehashedScheme};
use ferrosec_crypto::x509::Certificate;
use ferrosec_wire::ikev2::AuthMethod;

use super::payloads as pl;
use crate::event::{Failure, LocalError};
use crate::identity::Identity;
use crate::v2::CertAuth;
use crate::v2::certauth;

/// Certificate encoding: X.509 certificate, signature (RFC 2408 §3.9).
pub(crate) const X509_SIGNATURE: u8 = 4;

/// The phase-1 authentication method a key of this kind signs with.
pub(crate) fn method_of(kind: &KeyKind) -> Result<u16, String> {
    match kind {
        KeyKind::Rsa { .. } => Ok(pl::AUTH_RSA_SIG),
        KeyKind::Ecdsa { curve: 256 } => Ok(pl::AUTH_ECDSA_256),
        KeyKind::Ecdsa { curve: 384 } => Ok(pl::AUTH_ECDSA_384),
        KeyKind::Ecdsa { curve: 521 } => Ok(pl::AUTH_ECDSA_521),
        k => Err(format!(
            "a {k} key has no IKEv1 authentication method (IKEv1 signs with RSA or ECDSA \
             P-256/384/521)"
        )),
    }
}

/// Our method: that of our certificate's key.
pub(crate) fn our_method(c: &CertAuth) -> Result<u16, String> {
    let cert = c
        .chain
        .first()
        .ok_or_else(|| "no local certificate is configured".to_owned())?;
    method_of(&cert.key_kind())
}

/// The IKEv2 AUTH method of the same meaning (for `show` and the events).
pub(crate) fn as_v2_method(m: u16) -> AuthMethod {
    match m {
        pl::AUTH_RSA_SIG => AuthMethod::RSA_SIG,
        pl::AUTH_ECDSA_256 => AuthMethod::ECDSA_SHA256_P256,
        pl::AUTH_ECDSA_384 => AuthMethod::ECDSA_SHA384_P384,
        pl::AUTH_ECDSA_521 => AuthMethod::ECDSA_SHA512_P521,
        _ => AuthMethod::SHARED_KEY_MIC,
    }
}

/// Our CR payload bodies: certificate type 4 and each anchor's subject DN.
pub(crate) fn cr_bodies(c: &CertAuth) -> Vec<Vec<u8>> {
    c.trust_anchors
        .iter()
        .map(|a| {
            let mut b = vec![X509_SIGNATURE];
            b.extend_from_slice(&a.subject_der());
            b
        })
        .collect()
}

/// Our CERT payload bodies: our certificate, then its intermediates.
pub(crate) fn cert_bodies(c: &CertAuth) -> Vec<Vec<u8>> {
    c.chain
        .iter()
        .map(|cert| {
            let mut b = vec![X509_SIGNATURE];
            b.extend_from_slice(cert.der());
            b
        })
        .collect()
}

/// Our SIG over HASH_I or HASH_R.
pub(crate) fn sign(c: &CertAuth, hash: &[u8]) -> Result<Vec<u8>, Failure> {
    c.key
        .sign_prehashed(hash)
        .map_err(|e| Failure::Local(LocalError::Sign(format!("IKEv1 signature: {e}"))))
}

/// The method in words with the scheme, for a bad signature.
fn scheme_words(method: u16, hash_len: usize, cert: &Certificate) -> String {
    format!(
        "{} over the {hash_len}-octet HASH (IKEv1), certificate key {}",
        pl::auth_method_name(method),
        cert.key_kind()
    )
}

/// Checks the peer's authentication: its certificate (the first CERT of encoding 4, the
/// others intermediates) leads to one of our anchors at `now`, vouches for its ID, has a key
/// of the negotiated method, and its SIG verifies over the expected HASH_I / HASH_R. Gives
/// the peer's certificate.
pub(crate) fn check_peer(
    c: &CertAuth,
    method: u16,
    certs: &[&[u8]],
    peer_id: &Identity,
    hash: &[u8],
    signature: &[u8],
    now: Option<u64>,
) -> Result<Certificate, Failure> {
    let (ee, intermediates) = certauth::peer_chain(certs)?;
    let now = now.ok_or(Failure::Local(LocalError::NoWallClock))?;
    // The configured CRLs (crl-fetch is IKEv2 only: the config refuses it on IKEv1).
    certauth::check_chain(c, &ee, &intermediates, &c.crls, now)?;
    certauth::check_id(peer_id, &ee)?;
    let kind = ee.key_kind();
    let scheme = PrehashedScheme::for_key(&kind)
        .filter(|_| method_of(&kind).ok() == Some(method))
        .ok_or_else(|| {
            Failure::UnsupportedSignature(format!(
                "the negotiated IKEv1 method is {}, but the peer's certificate \"{}\" has an {} \
                 key (both sides of IKEv1 sign with the one negotiated method)",
                pl::auth_method_name(method),
                ee.subject(),
                kind
            ))
        })?;
    sig::verify_prehashed(scheme, &ee.public_key(), hash, signature).map_err(|_| {
        Failure::BadSignature {
            subject: ee.subject(),
            scheme: scheme_words(method, hash.len(), &ee),
        }
    })?;
    Ok(ee)
}
